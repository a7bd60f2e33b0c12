"""The decoder option: OpenCV fallback, torchcodec errors, and the torchcodec chunking and gray rule."""

import cv2
import numpy as np
import pytest
import torch

from mouseemo.cli import main
from mouseemo.data.decode import (
    TorchCodecChunks,
    decoded_chunks,
    gray_from_rgb,
    resolve_decoder,
    torchcodec_available,
)
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError
from mouseemo.testing import write_session

no_torchcodec = pytest.mark.skipif(torchcodec_available(), reason="torchcodec is installed here")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return write_session(tmp_path_factory.mktemp("dec") / "data", num_frames=40, size=(48, 64), seed=2)


def test_opencv_is_opencv_and_bad_names_are_refused():
    assert resolve_decoder("opencv", "cpu") == "opencv"
    assert resolve_decoder("opencv", "cuda") == "opencv"
    assert resolve_decoder("auto", "cpu") == "opencv"  # torchcodec or not: CPU scoring decodes with OpenCV
    with pytest.raises(ConfigError, match="`decoder` must be one of auto, opencv, torchcodec; got 'nvdec'"):
        resolve_decoder("nvdec", "cpu")


@no_torchcodec
def test_without_torchcodec_auto_falls_back_and_explicit_is_one_clear_error(session, tmp_path):
    assert resolve_decoder("auto", "cuda") == "opencv"
    assert resolve_decoder("auto", torch.device("cuda", 1)) == "opencv"
    with pytest.raises(ConfigError, match="`decoder` torchcodec needs the torchcodec package"):
        resolve_decoder("torchcodec", "cpu")
    with pytest.raises(ConfigError, match="torchcodec package"):
        TorchCodecChunks(session / "face.mp4")
    with VideoReader(session / "face.mp4") as vr, pytest.raises(ConfigError, match="torchcodec package"):
        next(decoded_chunks(vr, 8, "torchcodec", "cpu"))


def test_auto_chunks_are_the_readers_chunks(session):
    with VideoReader(session / "face.mp4") as vr:
        want = [(s, f.copy()) for s, f in vr.iter_chunks(16)]
    with VideoReader(session / "face.mp4") as vr:
        got = list(decoded_chunks(vr, 16, "auto", "cpu"))
    assert [s for s, _ in got] == [s for s, _ in want] == [0, 16, 32]
    for (_, a), (_, b) in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_gray_from_rgb_is_opencvs_rule():
    v = np.arange(256, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(16, 1024, 1024, 3)  # every colour
    want = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
    got = gray_from_rgb(torch.from_numpy(rgb).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(got.numpy(), want)
    with pytest.raises(Exception, match=r"\(N, 3, H, W\) uint8"):
        gray_from_rgb(torch.zeros(2, 4, 4, 3, dtype=torch.uint8))


class FramesAsDecoder:
    """torchcodec's VideoDecoder interface over frames OpenCV decoded (RGB, NCHW)."""

    def __init__(self, bgr: np.ndarray) -> None:
        rgb = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in bgr])
        self.data = torch.from_numpy(rgb).permute(0, 3, 1, 2)
        self.calls = []

    def __len__(self) -> int:
        return len(self.data)

    def get_frames_in_range(self, start, stop):
        self.calls.append((start, stop))

        class Batch:
            data = self.data[start:stop]

        return Batch


def test_torchcodec_chunks_crop_and_gray_as_the_opencv_reader(session):
    """Given the same RGB pixels, torchcodec chunks equal VideoReader's: crop, gray rule, chunk bounds."""
    path = session / "face.mp4"
    cap = cv2.VideoCapture(str(path))
    bgr = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        bgr.append(f)
    cap.release()
    crop = (5, 3, 40, 30)
    with VideoReader(path, crop=crop) as vr:
        want = vr.read()
    fake = FramesAsDecoder(np.stack(bgr))
    chunks = list(TorchCodecChunks(path, crop, "cpu", decoder=fake).iter_chunks(16))
    assert [s for s, _ in chunks] == [0, 16, 32]
    assert fake.calls == [(0, 16), (16, 32), (32, 40)]
    got = torch.cat([c for _, c in chunks]).numpy()
    np.testing.assert_array_equal(got, want)
    part = list(TorchCodecChunks(path, crop, "cpu", decoder=fake).iter_chunks(16, start=10, stop=20))
    assert [(s, len(c)) for s, c in part] == [(10, 10)]
    with pytest.raises(ConfigError, match="chunk_size must be positive"):
        next(TorchCodecChunks(path, crop, "cpu", decoder=fake).iter_chunks(0))


@no_torchcodec
def test_predict_decoder_flag(session, tmp_path, capsys):
    protos = tmp_path / "protos.npz"
    from mouseemo.inference.inputs import resolve_inputs
    from mouseemo.inference.prototypes import build_from_videos

    build_from_videos(resolve_inputs([str(session)], None, True), hog={"pixels_per_cell": 16}, k=3).save(
        protos
    )
    out = tmp_path / "out"
    args = ["predict", str(session), "--prototypes", str(protos), "--out", str(out), "--no-plot", "--quiet"]
    assert main([*args, "--decoder", "torchcodec"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--decoder torchcodec needs the torchcodec package" in err[0], err
    assert not out.exists() or not any(out.iterdir())
    assert main([*args, "--decoder", "opencv"]) == 0
    assert main([*args, "--decoder", "auto", "--overwrite"]) == 0
    with pytest.raises(SystemExit):
        main([*args, "--decoder", "nvdec"])
