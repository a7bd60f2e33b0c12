"""Real mouse-face frames (../shared/data/real): video round trip, HOG parity (CPU and GPU), the hog command."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import hog_gradients, skimage_bins

from mouseemo.cli import main
from mouseemo.data.crop import to_gray
from mouseemo.data.video import VideoReader
from mouseemo.ops import hog
from mouseemo.ops._hog import cupy_kernel

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


# Windows of the PNG frames for the direct parity test (full frames take ~10x longer in scikit-image).
CROP = (160, 192)


def _near_edge_pixels(image: np.ndarray, orientations: int) -> np.ndarray:
    """``(k, 2)`` pixels whose square-root gradient lies within 1e-11 degrees of a bin edge: there
    the last bit of numpy's ``arctan2`` (which depends on the CPU's SIMD) decides scikit-image's bin."""
    gx, gy = hog_gradients(image, sqrt=True)
    theta = np.degrees(np.arctan2(gy, gx)) % 180
    step = 180.0 / orientations
    dist = np.abs(theta - np.round(theta / step) * step)
    exact = np.isin(theta, (45.0, 135.0)) | (gx == 0) | (gy == 0)  # exact ties: decided by comparisons
    return np.argwhere((dist < 1e-11) & ~exact)


def _crop_with_ties(image: np.ndarray) -> tuple[np.ndarray, int]:
    """The ``CROP`` window holding the most near-edge pixels (8 and 9 orientations), and their count."""
    h, w = CROP
    ties = np.concatenate([_near_edge_pixels(image, 8), _near_edge_pixels(image, 9)])
    best, count = (0, 0), 0
    for y, x in ties[:: max(1, len(ties) // 32)]:  # windows centred on (up to ~32) near-edge pixels
        r0 = min(max(int(y) - h // 2, 0), image.shape[0] - h)
        c0 = min(max(int(x) - w // 2, 0), image.shape[1] - w)
        inside = ((ties >= (r0 + 1, c0 + 1)) & (ties < (r0 + h - 1, c0 + w - 1))).all(1).sum()
        if inside > count:
            best, count = (r0, c0), int(inside)
    r0, c0 = best
    return image[r0 : r0 + h, c0 : c0 + w], count


@pytest.fixture(scope="module")
def png_crops(real_data_dir):
    """The PNG frames read directly (no video round trip), cropped around their near-tie pixels."""
    paths = sorted((real_data_dir / "facemap_face_frames").glob("*.png"))
    paths += sorted((real_data_dir / "dlc_reaching_face_frames").glob("*.png"))
    crops = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert image is not None, path
        crops.append((path.name, *_crop_with_ties(image)))
    assert sum(count for _, _, count in crops) >= 10  # the frames do exercise the near-tie path
    return crops


@pytest.mark.parametrize("sqrt", [True, False])
@pytest.mark.parametrize("ppc", [8, 16, 32, (13, 7)])
@pytest.mark.parametrize("orientations", [8, 9])
def test_hog_parity_on_png_frames(png_crops, orientations, ppc, sqrt):
    """scikit-image's HOG of the PNG frames themselves, whatever this CPU's numpy ``arctan2`` returns."""
    ppc = (ppc, ppc) if isinstance(ppc, int) else ppc
    for name, image, _ in png_crops:
        ref = skimage_feature.hog(image, orientations, ppc, (1, 1), "L2-Hys", transform_sqrt=sqrt)
        ours = hog(image, orientations, ppc, 1, "L2-Hys", sqrt)
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() <= 1e-6, name


@pytest.mark.parametrize("sqrt", [True, False])
@pytest.mark.parametrize("orientations", [8, 9])
def test_per_pixel_bins_on_png_frames(png_crops, orientations, sqrt):
    """Every pixel of the PNG frames lands in scikit-image's bin (1 x 1 cells: a pixel's histogram)."""
    for name, image, _ in png_crops:
        gx, gy = hog_gradients(image, sqrt)
        ref = skimage_bins(gx, gy, orientations).reshape(image.shape)
        h = hog(image, orientations, 1, 1, "L1", sqrt, feature_vector=False)
        h = h.reshape(*image.shape, orientations)
        ours = h.argmax(-1)
        ours[h.max(-1) == 0] = -1
        bad = np.argwhere(ours != ref)
        assert bad.size == 0, f"{name}: {len(bad)} pixels binned unlike scikit-image, e.g. {bad[:3].tolist()}"


# ------------------------------------------------------------------------------------------------
# GPU (skipped without CUDA): both GPU paths on real frames
# ------------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
GPU_TOL = 1e-5
#: The paper's settings, 9 orientations with 8-px cells, scikit-image's defaults (no square root).
GPU_SETTINGS = [(8, 32, 1, True), (9, 8, 1, True), (9, 8, 3, False)]


@pytest.fixture(scope="module")
def gpu_frames(request):
    """Grey frames of the most common size (up to 32) in ``$MOUSEEMO_GPU_FRAMES`` (a folder of
    PNG/JPEG/TIFF images; ``benchmarks/gpu_check.py --frames DIR`` sets it), else the Facemap frames."""
    env = os.environ.get("MOUSEEMO_GPU_FRAMES")
    folder = Path(env) if env else request.getfixturevalue("real_data_dir") / "facemap_face_frames"
    by_size: dict = {}
    for path in sorted(folder.iterdir()):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.suffix.lower() in IMAGE_SUFFIXES else None
        if img is not None and min(img.shape) >= 32:
            by_size.setdefault(img.shape, []).append(img)
    assert by_size, f"no readable image in {folder}"
    return np.stack(max(by_size.values(), key=len)[:32])


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torch", "cupy"])
@pytest.mark.parametrize("orientations,ppc,cpb,sqrt", GPU_SETTINGS)
def test_gpu_real_frames_equal_cpu(gpu_frames, backend, orientations, ppc, cpb, sqrt):
    """GPU HOG of real frames equals the CPU's, which equals scikit-image's."""
    if backend == "cupy":
        pytest.importorskip("cupy")
        if not cupy_kernel.available():
            pytest.skip("cupy sees no device")
    import torch

    kw = dict(orientations=orientations, pixels_per_cell=(ppc, ppc), cells_per_block=(cpb, cpb),
              block_norm="L2-Hys", transform_sqrt=sqrt)  # fmt: skip
    cpu = hog(torch.from_numpy(gpu_frames), **kw)
    gpu = hog(torch.from_numpy(gpu_frames).cuda(), **kw, backend=backend)
    assert gpu.is_cuda
    assert (gpu.cpu().double() - cpu.double()).abs().max().item() <= GPU_TOL
    ref = np.stack([skimage_feature.hog(f, **kw) for f in gpu_frames[:2]])
    assert np.abs(cpu[:2].double().numpy() - ref).max() <= 1e-6
