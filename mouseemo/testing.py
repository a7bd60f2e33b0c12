"""Small fixtures in the real formats, shared by the tests and the benchmark scripts.

* :func:`write_session` / :func:`write_dataset`: tiny session folders (OpenCV ``face.mp4``,
  ``face_timestamps.csv``, ``events.csv``, ``truth/frames.csv``, ``session.json``) whose frames are
  gratings with a class-specific orientation (:func:`label_frames`);
* :func:`face_like_frames`: smoothed noise with a face-like grey range, for speed and parity runs;
* :func:`untrained_checkpoint`: a checkpoint of a model config with random weights and its checkpoint
  record (speed does not depend on the weights).

Nothing in the library imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mouseemo.constants import EMOTIONS


def write_video(path: Path, frames: np.ndarray, fps: float = 20.0, fourcc: str = "mp4v") -> Path:
    """Write gray uint8 frames ``(T,H,W)`` as a 3-channel video."""
    h, w = frames.shape[1:]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), True)
    assert vw.isOpened()
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()
    return path


def label_frames(labels: np.ndarray, size: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """Frames whose content depends on the label: a grating with a class-specific orientation."""
    rng = np.random.default_rng(seed)
    h, w = size
    frames = np.empty((len(labels), h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, lab in enumerate(labels):
        theta = np.pi * lab / len(EMOTIONS)
        phase = rng.uniform(0, 2 * np.pi)
        grating = np.cos(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / 8.0 + phase)
        frames[i] = np.clip(110 + 70 * grating + rng.normal(0, 6, size), 0, 255).astype(np.uint8)
    return frames


def write_session(
    root: Path,
    animal: str = "m01",
    session: str = "s01",
    num_frames: int = 140,
    fps: float = 20.0,
    size: tuple[int, int] = (48, 64),
    seed: int = 0,
    classes: Sequence[str] = EMOTIONS,
    render=label_frames,
) -> Path:
    """A tiny session folder: face.mp4, face_timestamps.csv, events.csv, truth/frames.csv, session.json.

    Labels cycle through ``classes`` in blocks of 20 frames; every block is an event window. The
    frames are ``render(labels, size, seed)`` (labels as indices into ``classes``): by default
    gratings whose orientation is the class (:func:`label_frames`).
    """
    path = root / animal / session
    (path / "truth").mkdir(parents=True, exist_ok=True)
    labels = np.array([(i // 20) % len(classes) for i in range(num_frames)])
    write_video(path / "face.mp4", render(labels, size, seed), fps)
    t = np.arange(num_frames) / fps
    (path / "face_timestamps.csv").write_text(
        "frame,time_s\n" + "".join(f"{i},{ti:.6f}\n" for i, ti in enumerate(t))
    )
    rows = ["onset,duration,label,value"]
    for start in range(0, num_frames, 20):
        rows.append(f"{start / fps:.6f},{20 / fps:.6f},{classes[labels[start]]},")
    (path / "events.csv").write_text("\n".join(rows) + "\n")
    (path / "truth" / "frames.csv").write_text(
        "frame,time_s,label\n" + "".join(f"{i},{t[i]:.6f},{classes[labels[i]]}\n" for i in range(num_frames))
    )
    (path / "session.json").write_text(json.dumps({"animal": animal, "session": session, "fps": fps}))
    return path


def write_dataset(root: Path, num_mice: int = 3, **kw) -> Path:
    for k in range(num_mice):
        write_session(root, animal=f"m{k + 1:02d}", seed=k, **kw)
    return root


def face_like_frames(
    num: int, height: int, width: int, seed: int = 0, lo: int = 15, hi: int = 240, sigma: float = 3.0
) -> np.ndarray:
    """``num`` frames of Gaussian-smoothed noise (``sigma`` pixels) stretched to ``lo..hi`` (uint8), a
    face-like grey range; reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.empty((num, height, width), dtype=np.uint8)
    for i in range(num):
        x = cv2.GaussianBlur(rng.normal(size=(height, width)).astype(np.float32), (0, 0), sigma)
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6)
        out[i] = (lo + (hi - lo) * x).astype(np.uint8)
    return out


def untrained_checkpoint(path: str | Path, model: str = "cnn", overrides: Sequence[str] = ()) -> Path:
    """A checkpoint of ``model=<model>`` (``conf/model``) with random weights and its checkpoint record,
    as :func:`mouseemo.tasks.train` would save it; written once (an existing ``path`` is kept)."""
    path = Path(path)
    if path.is_file():
        return path
    import torch
    from hydra.utils import instantiate

    from mouseemo.models.checkpoint import RECORD_KEY, checkpoint_record
    from mouseemo.utils.configs import compose

    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = compose("train", [f"model={model}", f"paths.root_dir={path.parent}", *overrides], hydra_config=True)
    module = instantiate(cfg.model)
    torch.save({"state_dict": module.state_dict(), RECORD_KEY: checkpoint_record(cfg)}, path)
    return path
