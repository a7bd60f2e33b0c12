"""Real mouse-face frames (../shared/data/real): video round trip, HOG parity, the hog command."""

import cv2
import numpy as np
import pytest

from mouseemo.cli import main
from mouseemo.data.video import VideoReader, to_gray
from mouseemo.ops import hog

skimage_feature = pytest.importorskip("skimage.feature")

FACEMAP = ["img0051", "img0076", "img0888", "img3050", "img0067", "img0107"]


@pytest.fixture(scope="module")
def facemap_video(real_data_dir, tmp_path_factory):
    frames = [cv2.imread(str(real_data_dir / "facemap_face_frames" / f"{n}.png")) for n in FACEMAP]
    assert all(f is not None for f in frames)
    h, w = frames[0].shape[:2]
    path = tmp_path_factory.mktemp("real") / "face.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h), True)
    for f in frames:
        vw.write(f)
    vw.release()
    return path, np.stack([to_gray(f) for f in frames])


def test_real_video_round_trip(facemap_video):
    path, gray = facemap_video
    with VideoReader(path, crop=(100, 50, 640, 480)) as vr:
        assert vr.num_frames == 6
        assert (vr.full_height, vr.full_width) == (646, 864)
        frames = vr.read()
    assert frames.shape == (6, 480, 640) and frames.dtype == np.uint8
    # MJPG is lossy: the decoded faces stay close to the PNGs they were made from
    assert np.abs(frames.astype(int) - gray[:, 50:530, 100:740].astype(int)).mean() < 3


def test_hog_parity_on_real_faces(facemap_video, real_data_dir):
    path, _ = facemap_video
    with VideoReader(path) as vr:
        frames = vr.read()
    dlc = [
        to_gray(cv2.imread(str(p)))
        for p in sorted((real_data_dir / "dlc_reaching_face_frames").glob("*.png"))
    ]
    for img in [*frames, *dlc]:
        for ppc, sqrt in ((32, True), (16, False)):
            ref = skimage_feature.hog(
                img,
                orientations=8,
                pixels_per_cell=(ppc, ppc),
                cells_per_block=(1, 1),
                block_norm="L2-Hys",
                transform_sqrt=sqrt,
                feature_vector=True,
            )
            ours = hog(img, pixels_per_cell=(ppc, ppc), transform_sqrt=sqrt)
            assert ours.shape == ref.shape
            assert np.abs(ours - ref).max() < 1e-6
    batch = hog(frames)
    assert np.abs(batch[3] - hog(frames[3])).max() == 0


def test_hog_command_on_real_video(facemap_video, tmp_path):
    path, _ = facemap_video
    out = tmp_path / "feat.npy"
    assert main(["hog", str(path), "--out", str(out), "--crop", "100,50,640,480", "--quiet"]) == 0
    feats = np.load(out)
    assert feats.shape == (6, 8 * 15 * 20) and feats.dtype == np.float32
    with VideoReader(path, crop=(100, 50, 640, 480)) as vr:
        expected = hog(vr.read())
    np.testing.assert_allclose(feats, expected, atol=1e-6)
