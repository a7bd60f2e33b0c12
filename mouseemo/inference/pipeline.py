"""One video in, its predictions out: the streaming loop behind ``mouseemo predict``.

:func:`predict_video` opens the video (crop, gray), checks that it fits the model, then streams it:
a background thread decodes chunks of ``batch_size`` frames at most ``depth`` chunks ahead, a
second one prepares them (resize to the model's input, QC statistics); the calling thread moves
each chunk's uint8 frames to the device, scores them, and appends the chunk's rows to the CSV (and
frames to the overlay video) right away. Memory is flat in the video's length: no frame outlives its chunk;
per frame only the scores, label, time and three QC numbers are kept, for the summary and plot.

Outputs, per video (``<stem>`` from the input; see ``mouseemo predict --help``):

============================ =================================================================
``<stem>.csv``               ``frame,time_s,label,<prefix>_<name>...,rateable,unrateable_score``
``<stem>.json``              summary: frames, fps, time per label, per-stimulus readouts, QC,
                             decoding (truncation), model, processing speed
``<stem>.png``               traces plot (unless ``plot=False``)
``<stem>.overlay.mp4``       the face with its label and score bars (``overlay=True``)
``<stem>.nwb``               the time series in NWB (``nwb=True``, needs ``pynwb``)
============================ =================================================================

Every file is written under a temporary name and renamed at the end, the JSON last (its presence
marks a finished video; a stale JSON is removed first when a video is redone), so an interrupted or
failed video leaves no file that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mouseemo import __version__
from mouseemo.data.crop import Crop
from mouseemo.data.events import Events
from mouseemo.data.session import resolve_crop
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError, MouseemoError
from mouseemo.inference.departure import DepartureCollector
from mouseemo.inference.explain.overlay import label_maps
from mouseemo.inference.inputs import VideoInput
from mouseemo.inference.nwb import write_predictions_nwb
from mouseemo.inference.qc import StreamingQC, frame_stats
from mouseemo.inference.rateable import RateableFrames
from mouseemo.inference.scorers import DEFAULT_MIN_CONFIDENCE, Scorer
from mouseemo.inference.scoring import stream_scores
from mouseemo.inference.trial_scorer import stimulus_inputs
from mouseemo.models.components.prototypes import stimulus_readouts
from mouseemo.ops.similarity import minmax_scale
from mouseemo.utils.io import atomic_path, dumps_json, inside, write_json_atomic
from mouseemo.viz.overlay import OverlayWriter

#: Output kinds and their file suffixes; the JSON comes last (it marks completion).
SUFFIXES: dict[str, str] = {
    "csv": ".csv",
    "png": ".png",
    "overlay": ".overlay.mp4",
    "nwb": ".nwb",
    "json": ".json",
}

# pyplot keeps global state: one figure at a time across worker threads
_PLOT_LOCK = threading.Lock()


class Cancelled(MouseemoError):
    """The run was interrupted; the video's outputs were not written."""


#: One video to predict (the shared input record; its stem is cleaned to one path component).
PredictInput = VideoInput


@dataclass
class PredictOptions:
    """How :func:`predict_video` runs.

    Attributes:
        crop: ``(x, y, w, h)``, a preset name or ``"none"`` (whole frame) overriding the session's and
            the model's crop; ``None``: :func:`mouseemo.data.session.resolve_crop` decides.
        batch_size: frames per chunk (decoded, moved to the device and scored together).
        depth: chunks the decoding thread may run ahead (``None``: as many as fit in
            :data:`~mouseemo.inference.scoring.AHEAD_BYTES`, 1 to 4).
        plot, overlay, nwb: which optional outputs to write.
        overlay_map: with ``overlay``, blend the map of each frame's label onto the face
            (:func:`mouseemo.inference.explain.overlay.label_maps`: per-cell similarity contributions for
            prototype models, nearly free; Grad-CAM for classifiers, a backward pass per chunk).
        min_confidence: threshold of the low-confidence QC check (``None``: per score kind, see
            :data:`mouseemo.inference.scorers.DEFAULT_MIN_CONFIDENCE`).
        cancel: set it to stop between chunks (the video then raises :class:`Cancelled`).
        overwrite: replace existing files that mouseemo did not write (see :func:`foreign_outputs`).
        decoder: ``"auto"``, ``"opencv"`` or ``"torchcodec"`` (:func:`mouseemo.data.decode.resolve_decoder`).
        departure_baseline_s: prototype models with events: seconds before each stimulus whose mean
            HOG is the trial's own pre-stimulus face, for the per-stimulus ``departure`` readout
            (``None``: no departure readout).
        abstain, rateable_threshold: see :class:`~mouseemo.inference.rateable.RateableFrames`.
    """

    crop: Crop | str | None = None
    batch_size: int = 256
    depth: int | None = None
    plot: bool = True
    overlay: bool = False
    overlay_map: bool = False
    nwb: bool = False
    min_confidence: float | None = None
    cancel: threading.Event | None = None
    overwrite: bool = False
    departure_baseline_s: float | None = 2.0
    abstain: bool = False
    rateable_threshold: float | None = None
    decoder: str = "auto"

    def kinds(self) -> list[str]:
        wanted = {
            "csv",
            "json",
            "png" if self.plot else "",
            "overlay" if self.overlay else "",
            "nwb" if self.nwb else "",
        }
        return [k for k in SUFFIXES if k in wanted]


def output_paths(out_dir: Path, stem: str, opts: PredictOptions) -> dict[str, Path]:
    """The files :func:`predict_video` writes for ``stem``, by kind (``csv``, ``json``, ...).

    Raises:
        ConfigError: a path would lie outside ``out_dir`` (a stem that is not one path component).
    """
    return {k: inside(out_dir, Path(out_dir) / f"{stem}{SUFFIXES[k]}") for k in opts.kinds()}


def marker_path(out_dir: Path, stem: str) -> Path:
    """The hidden file that lists the outputs mouseemo wrote for ``stem`` (see :func:`foreign_outputs`)."""
    return Path(out_dir) / f".{stem}.mouseemo.json"


def _listed_outputs(path: Path) -> set[str]:
    """Names listed under ``outputs`` in a summary JSON or marker mouseemo wrote (else empty)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return set()
    if not isinstance(record, dict) or "mouseemo_version" not in record:
        return set()
    outputs = record.get("outputs")
    if not isinstance(outputs, dict):
        return set()
    return {str(v) for v in outputs.values()}


def _own_outputs(out_dir: Path, stem: str, opts: PredictOptions) -> set[str]:
    json_path = output_paths(out_dir, stem, opts)["json"]
    own = _listed_outputs(marker_path(out_dir, stem))
    summary = _listed_outputs(json_path)
    return own | summary | ({json_path.name} if summary else set())


def foreign_outputs(out_dir: Path, stem: str, opts: PredictOptions) -> list[Path]:
    """Existing files at ``stem``'s output paths that mouseemo did not write.

    A file is mouseemo's when ``<stem>.json`` is a mouseemo summary whose ``outputs`` list it, or
    the hidden marker ``.<stem>.mouseemo.json`` (written just before the outputs are renamed into
    place, so it covers a run interrupted between two renames) lists it. Anything else (a file of
    the same name that someone put there) is foreign and is replaced only with ``overwrite``.
    """
    paths = output_paths(out_dir, stem, opts)
    existing = [p for p in paths.values() if p.exists() or p.is_symlink()]
    if not existing:
        return []
    own = _own_outputs(out_dir, stem, opts)
    return [p for p in existing if p.name not in own or p.is_symlink() or not p.is_file()]


def check_replaceable(out_dir: Path, stem: str, opts: PredictOptions) -> None:
    """ConfigError naming the first file of ``stem``'s outputs that mouseemo would replace but did
    not write, unless ``opts.overwrite``."""
    if opts.overwrite:
        return
    foreign = foreign_outputs(out_dir, stem, opts)
    if foreign:
        raise ConfigError(
            f"refusing to replace {foreign[0]}: mouseemo did not write it (set `overwrite` to replace it)"
        )


def is_finished(out_dir: Path, stem: str, opts: PredictOptions) -> bool:
    """Whether every output of ``stem`` exists and mouseemo wrote it (the JSON is renamed last, so it
    marks completion, and it lists the files it completes)."""
    paths = output_paths(out_dir, stem, opts)
    if not all(p.is_file() for p in paths.values()):
        return False
    own = _listed_outputs(paths["json"]) | {paths["json"].name}
    return all(p.name in own for p in paths.values())


def _csv_rows(start: int, times: np.ndarray, labels: list[str], scores: np.ndarray) -> str:
    vals = np.char.mod("%.6f", scores.astype(np.float64))
    return "".join(
        f"{start + i},{times[i]:.6f},{labels[i]},{','.join(vals[i])}\n" for i in range(len(labels))
    )


def predict_video(
    item: PredictInput,
    scorer: Scorer,
    out_dir: str | Path,
    opts: PredictOptions | None = None,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int | None], None] | None = None,
) -> dict:
    """Score every frame of one video and write its outputs; returns the summary (also the JSON).

    Args:
        item: the video (see :class:`PredictInput`).
        scorer: the model (:mod:`mouseemo.inference.scorers`).
        out_dir: output folder (created when the first output is written).
        opts: see :class:`PredictOptions`.
        progress: called with the number of frames after each chunk.
        on_start: called once the video is open, with its expected frame count (or ``None``).

    Raises:
        DataError: unreadable video, timestamps or events; a video with more frames than its
            timestamps file has rows.
        ConfigError: a crop outside the frame; frames the model cannot score (other HOG parameters
            or frame size than the prototypes, ...).
        Cancelled: ``opts.cancel`` was set.
    """
    opts = opts or PredictOptions()
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    check_replaceable(out_dir, item.stem, opts)
    events, trials = stimulus_inputs(item, scorer)  # trials: for trial-locked checkpoints
    if opts.overlay_map and getattr(scorer, "reference_kind", None) == "trial":
        raise ConfigError("`overlay_map` is not available for trial-locked models yet")
    crop = resolve_crop(opts.crop, scorer.crop, item.meta, model=str(scorer.path), source=str(item.video))
    names = scorer.names
    notes: list[str] = []
    with VideoReader(item.video, crop=crop) as vr:
        height, width = vr.height, vr.width
        scorer.check(height, width, source=f"{item.video} (crop {list(crop) if crop else None})")
        clock = vr.clock()
        t_all, fps = clock.times, clock.fps
        notes += clock.notes
        expected = len(t_all) if t_all is not None else vr.frame_count_hint
        # this video's own copy: parallel videos never share a reference or neutral
        n_all = len(t_all) if t_all is not None else None
        scorer = scorer.for_video(vr, n_all, clock=clock, events=events, trials=trials)
        notes += scorer.notes
        if on_start is not None:
            on_start(expected)
        min_conf = opts.min_confidence
        if min_conf is None:
            min_conf = DEFAULT_MIN_CONFIDENCE.get(scorer.prefix)
        qc = StreamingQC(height, width, min_confidence=min_conf, confidence_measure=scorer.confidence_measure)
        rate = RateableFrames.for_scorer(scorer, opts.rateable_threshold, opts.abstain, min_conf)
        # label-free readout: the HOG of frames near each stimulus, against the trial's own pre-stimulus face
        departures = (
            DepartureCollector(events, opts.departure_baseline_s)
            if events is not None and scorer.kind == "prototypes" and opts.departure_baseline_s
            else None
        )
        paths = output_paths(out_dir, item.stem, opts)
        all_scores, all_labels, all_times = [], [], []
        with ExitStack() as stack:
            # entered in SUFFIXES order, so renamed in reverse on success: the JSON last
            tmp = {k: stack.enter_context(atomic_path(p)) for k, p in reversed(list(paths.items()))}
            tmp = {k: tmp[k] for k in paths}
            fh = stack.enter_context(open(tmp["csv"], "w", newline=""))
            fh.write(",".join(["frame", "time_s", "label", *scorer.columns]) + "\n")
            overlay = None
            if opts.overlay:
                overlay = stack.enter_context(
                    OverlayWriter(tmp["overlay"], fps, height, width, names, scorer.prefix)
                )
            n = 0

            def check_cancel() -> None:
                if opts.cancel is not None and opts.cancel.is_set():
                    raise Cancelled(f"{item.video}: interrupted")

            # closed (both threads joined) before the outputs are renamed or the reader closes
            chunks = stack.enter_context(
                closing(
                    stream_scores(
                        vr, scorer, clock, opts.batch_size, opts.depth, side=frame_stats,
                        before_chunk=check_cancel, decoder=opts.decoder,
                    )
                )
            )  # fmt: skip
            for chunk in chunks:
                start, frames, t, s, stats = chunk.start, chunk.frames, chunk.times, chunk.scores, chunk.extra
                b = len(frames)
                lab = scorer.labels(s)
                conf = scorer.confidence(s)
                s_np = s.cpu().numpy().astype(np.float32)
                label_names = [names[i] for i in lab]
                fh.write(_csv_rows(start, t, label_names, s_np))
                if overlay is not None:
                    heat = None
                    if opts.overlay_map:
                        heat = label_maps(
                            scorer, scorer.prepare(frames), lab, frames.shape[-2:],
                            getattr(scorer, "_reference", None),
                        )  # fmt: skip
                    overlay.write(frames, label_names, s_np, t, heat)
                qc.update(stats, t, conf)
                rate.update(stats)
                if departures is not None:
                    near = departures.wanted(t)
                    if near.any():
                        x = torch.from_numpy(scorer.prepare(frames[near])).to(scorer.device)
                        departures.update(t[near], scorer.hog(x).cpu().numpy())
                all_scores.append(s_np)
                all_labels.append(lab)
                all_times.append(t)
                n += b
                if progress is not None:
                    progress(b)
            if n == 0:
                raise DataError(f"no frames decoded from {item.video}")
            times = np.concatenate(all_times)
            scores = np.concatenate(all_scores)
            labels = np.concatenate(all_labels)
            decoding = {"decoded_frames": n, "expected_frames": expected, "truncated": False}
            # a container's count can be off by one for some formats; a timestamps file is exact
            if expected is not None and n < expected - (0 if t_all is not None else 1):
                source = vr.timestamps_path.name if t_all is not None else "the container"
                decoding.update(truncated=True, missing_frames=int(expected - n))
                notes.append(
                    f"truncated: decoded {n} of {expected} frames ({source} lists {expected}); "
                    f"processed the {n} decoded frames"
                )
            fh.close()  # complete: the rateable columns are added to it
            rateable = rate.finish(tmp["csv"], qc.per_frame(), scores, scorer.prefix)
            elapsed = time.perf_counter() - t_start
            summary = build_summary(
                item, scorer, crop, fps, scores, labels, times, events,
                qc.summary(times, t_all is not None, fps), decoding, notes, elapsed, paths, opts,
                departures,
            )  # fmt: skip
            summary["rateable"] = rateable
            if opts.plot:
                _plot(tmp["png"], item, scorer, times, scores, events)
            if opts.nwb:
                write_predictions_nwb(
                    tmp["nwb"], item.video, times, scores, names, scorer.prefix, labels, fps,
                    description=f"mouseemo {scorer.kind} {scorer.path.name}", meta=item.meta,
                )  # fmt: skip
            tmp["json"].write_text(dumps_json(summary), encoding="utf-8")
            # someone may have put a file there while this video ran
            check_replaceable(out_dir, item.stem, opts)
            marker = marker_path(out_dir, item.stem)
            owned = _listed_outputs(marker) if marker.is_file() else set()
            # what an earlier run wrote for this video and this one does not: removed once it is done
            earlier = _own_outputs(out_dir, item.stem, opts) | owned
            known = {f"{item.stem}{suffix}" for suffix in SUFFIXES.values()}
            stale = sorted(earlier & known - {p.name for p in paths.values()})
            write_json_atomic(
                marker,
                {"mouseemo_version": __version__, "outputs": {
                    **{n: n for n in owned}, **{k: p.name for k, p in paths.items()}}},
            )  # fmt: skip
            # a redone video: drop the old completion marker before any new file replaces an old one
            paths["json"].unlink(missing_ok=True)
    if stale:
        for name in stale:
            old = out_dir / name
            if old.is_file() and not old.is_symlink():
                old.unlink()
        write_json_atomic(
            marker, {"mouseemo_version": __version__, "outputs": {k: p.name for k, p in paths.items()}}
        )
    return summary


def _plot(path: Path, item: PredictInput, scorer: Scorer, times, scores, events: Events | None) -> None:
    from mouseemo.viz.expressions import plot_similarity_traces  # matplotlib: only when plotting

    with _PLOT_LOCK:
        windows = list(zip(events.onset, events.end, events.label)) if events is not None else []
        if scorer.prefix == "similarity":
            traces, what = minmax_scale(scores, axis=0), "similarity to each prototype (min-max scaled)"
        else:
            traces, what = scores, f"{scorer.prefix} per class"
        plot_similarity_traces(
            times, traces, scorer.names, path, windows=windows, title=f"{item.stem}: {what}"
        )


def build_summary(
    item: PredictInput,
    scorer: Scorer,
    crop,
    fps: float,
    scores: np.ndarray,
    labels: np.ndarray,
    times: np.ndarray,
    events: Events | None,
    qc: dict,
    decoding: dict,
    notes: list[str],
    elapsed: float,
    paths: dict[str, Path],
    opts: PredictOptions,
    departures: DepartureCollector | None = None,
) -> dict:
    """The summary JSON of one video (see the module docstring)."""
    names = scorer.names
    counts = np.bincount(labels, minlength=len(names))
    summary = {
        "video": str(item.video),
        "stem": item.stem,
        "events": str(item.events) if item.events is not None else None,
        "model": scorer.describe(),
        "names": names,
        "columns": ["frame", "time_s", "label", *scorer.columns, *RateableFrames.COLUMNS],
        "frames": int(len(labels)),
        "fps": round(float(fps), 6),
        "duration_s": float(times[-1] - times[0] + 1.0 / fps),
        "crop": list(crop) if crop is not None else None,
        "resize": list(scorer.resize) if scorer.resize is not None else None,
        "margin": scorer.margin if scorer.prefix == "similarity" else None,
        # frame counts over the nominal rate: exact for constant-rate video, close with dropped frames
        "seconds_per_label": {n: float(c / fps) for n, c in zip(names, counts)},
        "fraction_per_label": {n: float(c / len(labels)) for n, c in zip(names, counts)},
        f"mean_{scorer.prefix}": {n: float(np.nanmean(scores[:, j])) for j, n in enumerate(names)},
    }
    if scorer.kind == "prototypes":
        summary["prototypes"] = str(scorer.path)
    if events is not None:
        summary["stimuli"] = _stimuli(events, names, scores, times, scorer.prefix, departures)
    summary["qc"] = qc
    summary["decoding"] = decoding
    summary["warnings"] = list(notes)
    summary["outputs"] = {k: p.name for k, p in paths.items()}
    summary["processing"] = {
        "seconds": round(elapsed, 3),
        "frames_per_second": round(len(labels) / max(elapsed, 1e-9), 1),
        "device": str(scorer.device),
        "batch_size": opts.batch_size,
    }
    summary["mouseemo_version"] = __version__
    summary["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return summary


def _stimuli(
    events: Events,
    names: list[str],
    scores: np.ndarray,
    times: np.ndarray,
    prefix: str,
    departures: DepartureCollector | None = None,
) -> list[dict]:
    """Per stimulus: onset, duration, label, value and, when a class of that name exists, intensity
    and persistence of its score trace (:func:`stimulus_readouts`); with ``departures`` (prototype
    models) also the label-free ``departure`` from the trial's own pre-stimulus face
    (:func:`~mouseemo.inference.departure.departure_readout`)."""
    out = []
    for i, entry in events.stimuli():
        label = entry["label"]
        if label in names:
            # persistence is looked for until the next stimulus starts
            later = events.onset[events.onset > events.onset[i]]
            post = float(later.min() - events.end[i]) if len(later) else None
            entry["score"] = f"{prefix}_{label}"
            entry.update(
                stimulus_readouts(
                    scores[:, names.index(label)], times, events.onset[i], events.duration[i], post_s=post
                )
            )
        else:
            entry["note"] = f"no {label!r} class in the model"
        if departures is not None:
            entry.update(departures.readout(float(events.onset[i]), float(events.duration[i])))
        out.append(entry)
    return out


__all__ = [
    "SUFFIXES",
    "Cancelled",
    "PredictInput",
    "PredictOptions",
    "build_summary",
    "check_replaceable",
    "foreign_outputs",
    "is_finished",
    "output_paths",
    "predict_video",
]
