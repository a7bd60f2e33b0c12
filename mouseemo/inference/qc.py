"""Quality checks of a face video, computed while it streams (no second decoding pass).

Per frame, on the decoding thread (:func:`frame_stats`, OpenCV, 0.3 ms at 480 x 640): mean
brightness, sharpness (variance of the Laplacian; blur lowers it) and a small thumbnail. :class:`StreamingQC` turns them, chunk by chunk, into:

* **brightness drift**: mean brightness of the last ``reference_s`` seconds against the first;
* **blur**: frames whose sharpness falls below half the video's median, and their spans;
* **crop drift**: Pearson r of each frame's thumbnail with the *reference face* (the mean of the
  first ``reference_s`` seconds), and the shift of each minute's mean face against it (phase
  correlation, in pixels of the analysed frame): a face that slides out of the crop shows here;
* **low confidence**: spans where the model's confidence (top probability, or the gap between the
  best and second-best similarity) stays below a threshold;
* **frames**: dropped and duplicated frames from the timestamps
  (:func:`mouseemo.data.sync.detect_frame_problems`).

Memory: thumbnails are kept only until the reference face is complete (the first
``reference_s`` seconds); afterwards each frame is compared as it arrives. Per frame, three floats
are kept for the summary.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mouseemo.data.sync import detect_frame_problems

#: Thumbnail width (pixels) for the crop-drift comparison.
THUMB_WIDTH = 64

#: Sharpness is measured on frames reduced to at most this width (pixels).
SHARPNESS_WIDTH = 320

#: Thresholds behind the summary's ``flags``.
BRIGHTNESS_DRIFT_FLAG = 0.15  # relative change, last reference_s seconds vs first
BLUR_RATIO = 0.5  # a frame is blurred below this fraction of the video's median sharpness
BLUR_FRACTION_FLAG = 0.05  # fraction of frames below half the median sharpness
DRIFT_R_FLAG = 0.8  # thumbnail correlation with the reference face
SHIFT_FLAG = 0.05  # minute-mean shift, as a fraction of the frame width
LOW_CONFIDENCE_FLAG = 0.2  # fraction of frames below the confidence threshold

#: At most this many spans are listed per check (the counts cover all of them).
MAX_SPANS = 50


@dataclass
class FrameStats:
    """Statistics of one chunk of frames (``b`` frames)."""

    brightness: np.ndarray  # (b,) float32, mean gray level
    sharpness: np.ndarray  # (b,) float32, variance of the Laplacian
    thumbs: np.ndarray  # (b, h, w) float32


def thumb_size(height: int, width: int) -> tuple[int, int]:
    """``(h, w)`` of the thumbnails of ``height`` x ``width`` frames."""
    w = min(THUMB_WIDTH, width)
    return max(4, round(height * w / width)), w


def frame_stats(frames: np.ndarray) -> FrameStats:
    """Brightness, sharpness and a thumbnail of each uint8 ``(b, H, W)`` frame (OpenCV, GIL released).

    Sharpness is the variance of the Laplacian of the frame reduced to at most
    :data:`SHARPNESS_WIDTH` pixels wide (area interpolation): a third of the cost at 480 x 640, and
    blur that matters for expressions survives the reduction.

    Shape:
        frames: ``(b, H, W)`` uint8; outputs ``(b,)``, ``(b,)`` and ``(b, h, w)``.
    """
    b, height, width = frames.shape
    th, tw = thumb_size(height, width)
    sw = min(width, SHARPNESS_WIDTH)
    sh = max(3, round(height * sw / width))
    brightness = np.empty(b, np.float32)
    sharpness = np.empty(b, np.float32)
    thumbs = np.empty((b, th, tw), np.float32)
    for i, f in enumerate(frames):
        brightness[i] = cv2.mean(f)[0]
        small = f if sw == width else cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
        _, sd = cv2.meanStdDev(cv2.Laplacian(small, cv2.CV_16S))
        sharpness[i] = sd[0, 0] ** 2
        thumbs[i] = cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA)
    return FrameStats(brightness, sharpness, thumbs)


def _pearson_rows(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    a = x.reshape(len(x), -1).astype(np.float64)
    a -= a.mean(axis=1, keepdims=True)
    r = ref.reshape(-1).astype(np.float64)
    r = r - r.mean()
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, a @ r / np.where(den > 0, den, 1.0), 0.0).astype(np.float32)


def spans(mask: np.ndarray, times: np.ndarray, min_frames: int = 1) -> list[list[float]]:
    """``[start_s, end_s]`` of every run of True in ``mask`` lasting at least ``min_frames`` frames.

    ``end_s`` is the time of the run's last frame.

    Example:
        >>> spans(np.array([0, 1, 1, 0, 1], bool), np.arange(5) * 0.5)
        [[0.5, 1.0], [2.0, 2.0]]
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        [float(times[a]), float(times[b - 1])] for a, b in zip(starts, stops) if b - a >= max(1, min_frames)
    ]


class StreamingQC:
    """Accumulates :func:`frame_stats` chunk by chunk; :meth:`summary` gives the QC report.

    Args:
        height, width: size of the analysed frames (after cropping).
        reference_s: seconds at the start whose mean thumbnail is the reference face (also the
            windows at the start and end compared for brightness drift).
        block_s: the crop-drift shift is measured per block of this many seconds.
        min_confidence: confidence threshold of the low-confidence check (``None``: skip it).
        confidence_measure: what the confidence is, for the report.
        min_span_s: shortest span (seconds) listed as blurred or low-confidence.
    """

    def __init__(
        self,
        height: int,
        width: int,
        reference_s: float = 60.0,
        block_s: float = 60.0,
        min_confidence: float | None = None,
        confidence_measure: str = "",
        min_span_s: float = 0.5,
    ) -> None:
        self.height, self.width = height, width
        self.reference_s, self.block_s = reference_s, block_s
        self.min_confidence = min_confidence
        self.confidence_measure = confidence_measure
        self.min_span_s = min_span_s
        self._brightness: list[np.ndarray] = []
        self._sharpness: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        self._confidence: list[np.ndarray] = []
        self._pending: list[np.ndarray] = []  # thumbnails until the reference is complete
        self._ref_sum: np.ndarray | None = None
        self._ref_count = 0
        self.reference: np.ndarray | None = None
        self._blocks: dict[int, list] = {}  # block index -> [thumbnail sum, count]
        self._t0: float | None = None

    def update(self, stats: FrameStats, times: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """Add one chunk: its statistics, frame times (seconds) and, optionally, per-frame confidence."""
        times = np.asarray(times, np.float64)
        if self._t0 is None and len(times):
            self._t0 = float(times[0])
        self._brightness.append(stats.brightness)
        self._sharpness.append(stats.sharpness)
        if confidence is not None:
            self._confidence.append(np.asarray(confidence, np.float32))
        rel = times - (self._t0 or 0.0)
        thumbs = stats.thumbs
        for blk in np.unique((rel // self.block_s).astype(np.int64)):
            sel = (rel // self.block_s).astype(np.int64) == blk
            acc = self._blocks.setdefault(int(blk), [np.zeros(thumbs.shape[1:], np.float64), 0])
            acc[0] += thumbs[sel].sum(axis=0, dtype=np.float64)
            acc[1] += int(sel.sum())
        if self.reference is None:
            early = rel < self.reference_s
            if early.any():
                part = thumbs[early]
                s = part.sum(axis=0, dtype=np.float64)
                self._ref_sum = s if self._ref_sum is None else self._ref_sum + s
                self._ref_count += len(part)
                self._pending.append(part)
            if not early.all():
                self._finish_reference()
                self._r.append(_pearson_rows(thumbs[~early], self.reference))
        else:
            self._r.append(_pearson_rows(thumbs, self.reference))

    def _finish_reference(self) -> None:
        if self.reference is not None or self._ref_sum is None:
            return
        self.reference = (self._ref_sum / max(self._ref_count, 1)).astype(np.float32)
        # frames of the reference period are compared now, ahead of everything after them
        self._r.insert(0, _pearson_rows(np.concatenate(self._pending), self.reference))
        self._pending = []

    def per_frame(self) -> dict[str, np.ndarray]:
        """The per-frame values seen so far: ``brightness``, ``sharpness`` and ``face_r`` (thumbnail
        correlation with the reference face), each ``(n,)`` float32."""
        self._finish_reference()

        def cat(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, np.float32)

        return {
            "brightness": cat(self._brightness),
            "sharpness": cat(self._sharpness),
            "face_r": cat(self._r),
        }

    def summary(self, times: np.ndarray, timestamps_known: bool, fps: float) -> dict:
        """The QC report (JSON-ready) for the frames seen, at ``times`` (seconds)."""
        self._finish_reference()
        times = np.asarray(times, np.float64)
        n = len(times)
        min_frames = max(1, int(round(self.min_span_s * fps)))
        out: dict = {"flags": []}
        flags = out["flags"]

        if timestamps_known and n >= 2:
            rep = detect_frame_problems(times).to_dict()
            for key in ("dropped_after", "duplicated_at"):
                rep[key] = rep[key][:MAX_SPANS]
            out["frames"] = rep
            if rep["num_dropped"]:
                flags.append(f"{rep['num_dropped']} dropped frame(s)")
            if rep["num_duplicated"]:
                flags.append(f"{rep['num_duplicated']} duplicated frame(s)")
        else:
            out["frames"] = None  # no timestamps file: nothing to check against

        bright = np.concatenate(self._brightness) if self._brightness else np.zeros(0, np.float32)
        if n:
            rel = times - times[0]
            window = self.reference_s
            first = bright[rel < window]
            last = bright[rel > rel[-1] - window]
            change = float(last.mean() - first.mean())
            relative = change / max(float(first.mean()), 1e-6)
            out["brightness"] = {
                "mean": float(bright.mean()),
                "min": float(bright.min()),
                "max": float(bright.max()),
                "window_s": window,
                "first": float(first.mean()),
                "last": float(last.mean()),
                "drift": change,
                "drift_relative": relative,
            }
            if abs(relative) > BRIGHTNESS_DRIFT_FLAG:
                flags.append(f"brightness drifted {100 * relative:+.0f}% (last {window:g} s vs first)")

        sharp = np.concatenate(self._sharpness) if self._sharpness else np.zeros(0, np.float32)
        if n:
            median = float(np.median(sharp))
            blurred = sharp < BLUR_RATIO * median
            blur_spans = spans(blurred, times, min_frames)
            out["blur"] = {
                "measure": "variance of the Laplacian",
                "median": median,
                "p5": float(np.percentile(sharp, 5)),
                "threshold": BLUR_RATIO * median,
                "blurred_frames": int(blurred.sum()),
                "blurred_fraction": float(blurred.mean()),
                "num_spans": len(blur_spans),
                "spans_s": blur_spans[:MAX_SPANS],
            }
            if blurred.mean() > BLUR_FRACTION_FLAG:
                flags.append(f"{100 * blurred.mean():.0f}% of frames blurred (sharpness < half the median)")

        r = np.concatenate(self._r) if self._r else np.zeros(0, np.float32)
        if n and self.reference is not None:
            shifts = []
            scale = self.width / self.reference.shape[1]
            ref = self.reference.astype(np.float64)
            for blk in sorted(self._blocks):
                total, count = self._blocks[blk]
                mean = total / max(count, 1)
                (dx, dy), _ = cv2.phaseCorrelate(ref, mean)
                shifts.append([float(blk * self.block_s), float(dx * scale), float(dy * scale)])
            max_shift = max((np.hypot(s[1], s[2]) for s in shifts), default=0.0)
            low_r = r < DRIFT_R_FLAG
            out["crop_drift"] = {
                "reference": f"mean face of the first {self.reference_s:g} s",
                "similarity_median": float(np.median(r)),
                "similarity_min": float(r.min()),
                "frames_below": int(low_r.sum()),
                "threshold": DRIFT_R_FLAG,
                "shift_px": [
                    {"start_s": s[0], "dx": round(s[1], 2), "dy": round(s[2], 2)} for s in shifts[:MAX_SPANS]
                ],
                "max_shift_px": float(max_shift),
            }
            if max_shift > SHIFT_FLAG * self.width:
                flags.append(f"the face moved {max_shift:.0f} px from its first-minute position")
            if low_r.mean() > BLUR_FRACTION_FLAG:
                flags.append(
                    f"{100 * low_r.mean():.0f}% of frames differ from the reference face (r < {DRIFT_R_FLAG})"
                )

        if self.min_confidence is not None and self._confidence:
            conf = np.concatenate(self._confidence)
            low = conf < self.min_confidence
            low_spans = spans(low, times, min_frames)
            out["low_confidence"] = {
                "measure": self.confidence_measure,
                "threshold": float(self.min_confidence),
                "median": float(np.median(conf)),
                "frames": int(low.sum()),
                "fraction": float(low.mean()),
                "num_spans": len(low_spans),
                "spans_s": low_spans[:MAX_SPANS],
            }
            if low.mean() > LOW_CONFIDENCE_FLAG:
                flags.append(f"{100 * low.mean():.0f}% of frames have low confidence")
        out["ok"] = not flags
        return out
