import numpy as np
import pytest

from mouseemo.data.crop import parse_crop
from mouseemo.data.video import FrameCache, VideoReader, resize_frames
from mouseemo.errors import ConfigError, DataError
from tests.helpers import write_video


@pytest.fixture()
def video(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((37, 40, 56), dtype=np.uint8)
    for i in range(len(frames)):
        frames[i, :, :] = rng.integers(0, 30)
        frames[i, 5:15, (i % 40) : (i % 40) + 10] = 250  # a moving bar makes each frame identifiable
    return write_video(tmp_path / "face.mp4", frames, fps=25.0), frames


def test_counts_and_chunks(video):
    path, frames = video
    with VideoReader(path) as vr:
        assert vr.num_frames == 37
        assert (vr.height, vr.width) == (40, 56)
        assert vr.fps == pytest.approx(25.0)
        chunks = list(vr.iter_chunks(10))
    assert [s for s, _ in chunks] == [0, 10, 20, 30]
    decoded = np.concatenate([c for _, c in chunks])
    assert decoded.shape == (37, 40, 56) and decoded.dtype == np.uint8
    # mp4v is lossy; the bar must still be where we drew it
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 6


def test_crop_seek_and_read(video):
    path, _ = video
    with VideoReader(path, crop="10,5,20,10") as vr:
        assert (vr.height, vr.width) == (10, 20)
        all_frames = vr.read()
        part = vr.read(30, 34)
        again = vr.read(3, 5)
    assert part.shape == (4, 10, 20)
    np.testing.assert_array_equal(part, all_frames[30:34])
    np.testing.assert_array_equal(again, all_frames[3:5])


def test_timestamps_file_used_and_checked(video, tmp_path):
    path, _ = video
    ts = tmp_path / "face_timestamps.csv"
    ts.write_text("frame,time_s\n" + "".join(f"{i},{0.5 + i / 20:.4f}\n" for i in range(37)))
    with VideoReader(path) as vr:
        assert vr.timestamps[0] == pytest.approx(0.5)
        assert vr.fps == pytest.approx(20.0)
    ts.write_text("frame,time_s\n" + "".join(f"{i},{i / 20:.4f}\n" for i in range(30)))
    with VideoReader(path) as vr, pytest.raises(DataError, match="do not line up"):
        _ = vr.timestamps


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing.mp4", "not found"),
        (lambda p: (p / "empty.mp4").write_bytes(b"") and p / "empty.mp4" or p / "empty.mp4", "empty"),
        (
            lambda p: (p / "junk.mp4").write_bytes(b"\x00garbage" * 200) and p / "junk.mp4",
            "corrupt|cannot open",
        ),
    ],
)
def test_bad_video(tmp_path, make, match):
    with pytest.raises(DataError, match=match):
        VideoReader(make(tmp_path))


def test_crop_validation(video):
    path, _ = video
    with pytest.raises(ConfigError, match="outside"):
        VideoReader(path, crop=(50, 0, 20, 10))
    with pytest.raises(ConfigError, match="four integers"):
        parse_crop("1,2,3")
    with pytest.raises(ConfigError):
        parse_crop("a,b,c,d")
    assert parse_crop("1, 2, 3, 4") == (1, 2, 3, 4)


def test_frame_cache_build_reuse_and_rebuild(video, tmp_path):
    path, _ = video
    cache = FrameCache.get_or_build(path, tmp_path / "cache", crop=None, size=(20, 28))
    assert cache.frames.shape == (37, 20, 28)
    with VideoReader(path) as vr:
        expected = resize_frames(vr.read(), (20, 28))
    np.testing.assert_array_equal(np.asarray(cache.frames), expected)
    mtime = cache.path.stat().st_mtime_ns
    again = FrameCache.get_or_build(path, tmp_path / "cache", crop=None, size=(20, 28))
    assert again.path == cache.path and again.path.stat().st_mtime_ns == mtime
    other = FrameCache.get_or_build(path, tmp_path / "cache", crop=(0, 0, 28, 20), size=None)
    assert other.path != cache.path and other.frames.shape == (37, 20, 28)
    assert not list((tmp_path / "cache").glob(".*tmp*"))  # no temp files left behind
