"""Write synthetic sessions in the session-folder contract (see ``docs/ARCHITECTURE.md``).

A dataset is ``<out>/<animal>/<session>/`` folders (animals ``m01, m02, ...``, sessions ``s01, ...``)
plus ``<out>/manifest.csv``. Each session holds::

    session.json  face.mp4  face_timestamps.csv  events.csv  imaging_timestamps.csv
    suite2p/plane0/{F,Fneu,spks,iscell,ops,stat}.npy  truth/frames.csv  truth/neurons.csv  [imaging.tif]

Every file is written atomically; ``session.json`` is written last, so a session folder that has it is
complete. Randomness comes from generators seeded by ``(seed, component, animal[, session])``: an
animal looks the same (face, expression style, neurons) in all its sessions, each session has its own
schedule, camera and noise, and the same seed reproduces the same files (the video decodes to the same
frames; its container metadata may differ).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from mouseemo.constants import EMOTIONS
from mouseemo.data.synthetic import dynamics, neurons
from mouseemo.data.synthetic.camera import camera_clock, sample_camera
from mouseemo.data.synthetic.face import FaceRenderer
from mouseemo.data.synthetic.identity import sample_identity
from mouseemo.data.synthetic.schedule import build_schedule
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.io import atomic_path, save_npy_atomic, write_json_atomic, write_text_atomic

# component ids for seeding independent random streams
_IDENTITY, _STYLE, _POPULATION = 1, 2, 3
_SCHEDULE, _CAMERA, _CLOCK, _FACE, _RENDER, _IMAGING_CLOCK, _ACTIVITY, _MOVIE = range(10, 18)


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic dataset.

    Attributes:
        num_mice: animals ``m01 ...``.
        minutes: length of each session; >= ~1 minute guarantees all seven labels.
        seed: master seed (>= 0).
        size: video frame ``(H, W)``, even numbers >= 64.
        fps: camera rate.
        nuisance: ``low``, ``medium`` or ``high``: camera motion, lighting drift, noise, blur, dropped
            frames and grooming.
        imaging: write the two-photon side (Suite2p folder, imaging timestamps, neuron truth).
        num_sessions: sessions per animal ``s01 ...``.
        num_neurons: ROIs per field of view (about 12% are not cells).
        imaging_fs: two-photon frame rate.
        tiff: also write the raw movie ``imaging.tif`` (uint16; about 1 MB per second at 200 ROIs).
    """

    num_mice: int = 2
    minutes: float = 3.0
    seed: int = 0
    size: tuple[int, int] = (240, 320)
    fps: float = 20.0
    nuisance: str = "medium"
    imaging: bool = True
    num_sessions: int = 1
    num_neurons: int = 200
    imaging_fs: float = 15.0
    tiff: bool = False

    def validate(self) -> SynthConfig:
        """Return a normalised copy; raise :class:`ConfigError` naming the bad value."""

        def number(name, value, lo, hi, integer=False):
            try:
                v = int(value) if integer else float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"synthetic data: {name} must be a number, got {value!r}") from None
            if integer and v != value:
                raise ConfigError(f"synthetic data: {name} must be an integer, got {value!r}")
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ConfigError(f"synthetic data: {name} must be in [{lo}, {hi}], got {value!r}")
            return v

        fps = float(number("fps", self.fps, 1.0, 240.0))
        minutes = float(number("minutes", self.minutes, 0.0, 600.0))
        if minutes <= 0 or minutes * 60.0 * fps < 2:
            raise ConfigError(
                f"synthetic data: minutes must be > 0 (at least 2 frames), got {self.minutes!r}"
            )
        try:
            h, w = (int(v) for v in self.size)
        except (TypeError, ValueError):
            raise ConfigError(f"synthetic data: size must be (H, W), got {self.size!r}") from None
        if not (64 <= h <= 2160 and 64 <= w <= 4096) or h % 2 or w % 2:
            raise ConfigError(
                f"synthetic data: size must be even H x W with 64 <= H <= 2160, 64 <= W <= 4096, got {h}x{w}"
            )
        if self.nuisance not in dynamics.NUISANCE_LEVELS:
            raise ConfigError(
                f"synthetic data: nuisance must be one of {', '.join(dynamics.NUISANCE_LEVELS)}, "
                f"got {self.nuisance!r}"
            )
        return replace(
            self,
            num_mice=number("num_mice", self.num_mice, 1, 999, integer=True),
            minutes=minutes,
            seed=number("seed", self.seed, 0, 2**63 - 1, integer=True),
            size=(h, w),
            fps=fps,
            imaging=bool(self.imaging),
            num_sessions=number("num_sessions", self.num_sessions, 1, 99, integer=True),
            num_neurons=number("num_neurons", self.num_neurons, 1, 5000, integer=True),
            imaging_fs=float(number("imaging_fs", self.imaging_fs, 1.0, 120.0)),
            tiff=bool(self.tiff),
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        return d


def animal_name(index: int) -> str:
    return f"m{index + 1:02d}"


def session_name(index: int) -> str:
    return f"s{index + 1:02d}"


def _rng(seed: int, component: int, *ids: int) -> np.random.Generator:
    return np.random.default_rng([seed, component, *ids])


def animal_identity(seed: int, animal_index: int):
    """Appearance (:class:`.identity.Identity`) and expression style of animal ``animal_index`` under ``seed``."""
    identity = sample_identity(_rng(seed, _IDENTITY, animal_index), animal_name(animal_index))
    style = dynamics.sample_style(_rng(seed, _STYLE, animal_index))
    return identity, style


def _prepare_folder(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise DataError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise DataError(
                f"{path} is not empty; refusing to write a synthetic session there "
                f"(set `overwrite` to replace it)"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _fmt(values, spec: str) -> list[str]:
    values = np.asarray(values)
    if spec.endswith("f"):
        # round first and add +0.0 so that tiny negatives print as 0.0000, not -0.0000
        values = np.round(values.astype(np.float64), int(spec[1:-1])) + 0.0
    return [format(v, spec) for v in values.tolist()]


def _write_csv(path: Path, header: Sequence[str], columns: Sequence[list[str]]) -> None:
    lines = [",".join(header)]
    lines += [",".join(row) for row in zip(*columns, strict=True)]
    write_text_atomic(path, "\n".join(lines) + "\n")


def generate_session(
    session_dir: str | os.PathLike,
    animal_index: int = 0,
    session_index: int = 0,
    config: SynthConfig | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **params,
) -> Path:
    """Write one synthetic session into ``session_dir``.

    Args:
        session_dir: the session folder (created; must be empty unless ``overwrite``).
        animal_index: 0-based animal; fixes the animal's face, expression style and neurons.
        session_index: 0-based session of that animal; fixes schedule, camera and noise.
        config: dataset parameters; ``params`` override single fields (e.g. ``minutes=1.0``).
        overwrite: replace a non-empty ``session_dir``.
        progress: print a line to stderr when done.

    Returns:
        The session folder.

    Raises:
        ConfigError: invalid parameters.
        DataError: ``session_dir`` is not empty (and not ``overwrite``) or a file cannot be written.
    """
    cfg = replace(config or SynthConfig(), **params).validate()
    out = Path(session_dir)
    _prepare_folder(out, overwrite)
    t_start = time.perf_counter()
    seed, a, s = cfg.seed, int(animal_index), int(session_index)
    animal, session = animal_name(a), session_name(s)
    level = dynamics.NUISANCE_LEVELS[cfg.nuisance]
    duration = cfg.minutes * 60.0

    identity, style = animal_identity(seed, a)
    camera = sample_camera(level, _rng(seed, _CAMERA, a, s))
    trials = build_schedule(duration, _rng(seed, _SCHEDULE, a, s))
    times_all, keep = camera_clock(duration, cfg.fps, camera["drop_prob"], _rng(seed, _CLOCK, a, s))
    series_all = dynamics.simulate_face(times_all, trials, style, level, camera, _rng(seed, _FACE, a, s))
    times = times_all[keep]
    series = {k: v[keep] for k, v in series_all.items()}
    intens = np.stack([series[f"intensity_{e}"] for e in dynamics.STATES])
    labels = dynamics.frame_labels(intens)
    num_frames = len(times)
    frame_idx = _fmt(np.arange(num_frames), "d")
    time_col = _fmt(times, ".6f")

    # --- face video ------------------------------------------------------------------------------
    H, W = cfg.size
    renderer = FaceRenderer(identity, cfg.size, camera, seed=int(_rng(seed, _RENDER, a, s).integers(2**31)))
    columns = (
        [f"intensity_{e}" for e in dynamics.STATES] + list(dynamics.AU_NAMES) + list(dynamics.NUISANCE_NAMES)
    )
    with atomic_path(out / "face.mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, (W, H), True)
        if not writer.isOpened():
            raise DataError(f"{out / 'face.mp4'}: OpenCV cannot open an mp4v video writer")
        try:
            cols = [series[c] for c in columns]
            for i in range(num_frames):
                row = {c: float(v[i]) for c, v in zip(columns, cols, strict=True)}
                frame = renderer.render(row)
                writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        finally:
            writer.release()

    _write_csv(out / "face_timestamps.csv", ["frame", "time_s"], [frame_idx, time_col])
    _write_csv(
        out / "truth" / "frames.csv",
        ["frame", "time_s", "label", *columns],
        [frame_idx, time_col, [str(x) for x in labels]] + [_fmt(series[c], ".4f") for c in columns],
    )
    ev = sorted(trials, key=lambda tr: tr.onset)
    _write_csv(
        out / "events.csv",
        ["onset", "duration", "label", "value"],
        [_fmt([t.onset for t in ev], ".4f"), _fmt([t.duration for t in ev], ".4f"), [t.label for t in ev],
         [t.value for t in ev]],
    )  # fmt: skip

    # --- two-photon side ---------------------------------------------------------------------------
    imaging_info: dict = {}
    if cfg.imaging:
        imaging_info = _write_imaging(out, cfg, seed, a, s, times, series)

    label_counts = {e: int(np.sum(labels == e)) for e in EMOTIONS}
    params = {
        **cfg.to_dict(),
        "animal_index": a,
        "session_index": s,
        "duration_s": duration,
        "nuisance_scale": level,
        "num_captured_frames": int(len(times_all)),
        "num_dropped_frames": int(np.sum(~keep)),
        "label_frames": label_counts,
        "identity": identity.to_dict(),
        "expression_style": {"gains": style.gains, "offsets": style.offsets},
        "camera": camera,
        "trials": [asdict(t) for t in ev],
        "label_threshold": dynamics.LABEL_THRESHOLD,
        "kinetics": {k: asdict(v) for k, v in dynamics.KINETICS.items()},
        "imaging_details": imaging_info,
    }
    meta = {
        "animal": animal,
        "session": session,
        "fps": cfg.fps,
        "imaging_fs": cfg.imaging_fs if cfg.imaging else None,
        "num_frames": num_frames,
        "size": [H, W],
        "synthetic": True,
        "seed": seed,
        "params": params,
        "notes": (
            "Synthetic session from mouseemo.data.synthetic: a procedurally rendered face whose action "
            "units follow latent emotion intensities driven by the stimuli in events.csv, and a simulated "
            "two-photon population tuned to them. truth/ holds the ground truth; times are camera-clock "
            "seconds."
        ),
    }
    write_json_atomic(out / "session.json", meta)
    if progress:
        secs = time.perf_counter() - t_start
        print(f"  {animal}/{session}: {num_frames} frames ({int(np.sum(~keep))} dropped), "
              f"{imaging_info.get('num_frames', 0)} imaging frames, {secs:.1f} s",
              file=sys.stderr)  # fmt: skip
    return out


def _write_imaging(
    out: Path, cfg: SynthConfig, seed: int, a: int, s: int, times: np.ndarray, series: dict
) -> dict:
    pop = neurons.sample_population(cfg.num_neurons, _rng(seed, _POPULATION, a))
    t_img = neurons.imaging_clock(float(times[-1]), cfg.imaging_fs, _rng(seed, _IMAGING_CLOCK, a, s))
    if len(t_img) < 2:
        raise ConfigError(f"synthetic data: session too short for imaging at {cfg.imaging_fs} Hz")
    drives = neurons.drives_at(t_img, times, series)
    act = neurons.simulate_activity(pop, drives, cfg.imaging_fs, _rng(seed, _ACTIVITY, a, s))
    plane = out / "suite2p" / "plane0"
    save_npy_atomic(plane / "F.npy", act["F"])
    save_npy_atomic(plane / "Fneu.npy", act["Fneu"])
    save_npy_atomic(plane / "spks.npy", act["spks"])
    save_npy_atomic(plane / "iscell.npy", np.stack([pop.is_cell.astype(np.float64), pop.prob], axis=1))
    stat = np.empty(pop.num_neurons, dtype=object)
    for i, st in enumerate(pop.stat):
        stat[i] = st
    save_npy_atomic(plane / "stat.npy", stat, allow_pickle=True)
    mean_img = neurons.mean_image(pop, act)
    ops = {
        "fs": float(cfg.imaging_fs),
        "Ly": pop.Ly,
        "Lx": pop.Lx,
        "nframes": int(len(t_img)),
        "tau": neurons.TAU_DECAY,
        "nplanes": 1,
        "nchannels": 1,
        "neucoeff": neurons.NEUROPIL_COEFF,
        "diameter": 8,
        "meanImg": mean_img,
        "meanImgE": neurons.enhanced_image(mean_img),
        "yrange": [0, pop.Ly],
        "xrange": [0, pop.Lx],
        "synthetic": True,
    }
    ops_arr = np.empty((), dtype=object)
    ops_arr[()] = ops
    save_npy_atomic(plane / "ops.npy", ops_arr, allow_pickle=True)
    _write_csv(
        out / "imaging_timestamps.csv",
        ["frame", "time_s"],
        [_fmt(np.arange(len(t_img)), "d"), _fmt(t_img, ".6f")],
    )
    _write_csv(
        out / "truth" / "neurons.csv",
        [
            "neuron",
            "preferred",
            "gain",
            "baseline",
            "is_cell",
            "prob",
            "driver",
            "y",
            "x",
            "radius",
            "f0",
            "dff_per_spike",
        ],
        [
            _fmt(np.arange(pop.num_neurons), "d"),
            list(pop.preferred),
            _fmt(pop.gain, ".4f"),
            _fmt(pop.baseline, ".4f"),
            _fmt(pop.is_cell.astype(int), "d"),
            _fmt(pop.prob, ".4f"),
            list(pop.driver),
            [str(st["med"][0]) for st in pop.stat],
            [str(st["med"][1]) for st in pop.stat],
            _fmt([st["radius"] for st in pop.stat], ".3f"),
            _fmt(pop.f0, ".2f"),
            _fmt(pop.dff, ".4f"),
        ],
    )
    if cfg.tiff:
        import tifffile

        movie = neurons.movie_frames(pop, act, _rng(seed, _MOVIE, a, s))
        with atomic_path(out / "imaging.tif") as tmp:
            tifffile.imwrite(
                tmp, movie, shape=(len(t_img), pop.Ly, pop.Lx), dtype=np.uint16, photometric="minisblack"
            )
    return {
        "num_frames": int(len(t_img)),
        "num_neurons": pop.num_neurons,
        "num_cells": int(pop.is_cell.sum()),
        "Ly": pop.Ly,
        "Lx": pop.Lx,
        "offset_s": float(t_img[0]),
        "tau_rise": neurons.TAU_RISE,
        "tau_decay": neurons.TAU_DECAY,
        "neuropil_coeff": neurons.NEUROPIL_COEFF,
    }


def _session_job(job: tuple) -> str:
    path, a, s, cfg, overwrite, progress, threads = job
    if threads is not None:
        cv2.setNumThreads(threads)
    return str(generate_session(path, a, s, cfg, overwrite=overwrite, progress=progress))


def generate_dataset(
    out: str | os.PathLike,
    num_mice: int = 2,
    minutes: float = 3.0,
    seed: int = 0,
    size: tuple[int, int] = (240, 320),
    fps: float = 20.0,
    nuisance: str = "medium",
    imaging: bool = True,
    num_sessions: int = 1,
    num_neurons: int = 200,
    imaging_fs: float = 15.0,
    tiff: bool = False,
    progress: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
) -> list[Path]:
    """Write ``num_mice x num_sessions`` synthetic sessions under ``out`` and ``out/manifest.csv``.

    Args:
        out: dataset root (created).
        workers: processes to render sessions in parallel (default: one per CPU core, at most one per
            session). Results do not depend on it.
        Other arguments: see :class:`SynthConfig`.

    Returns:
        The session folders, in animal-then-session order.

    Raises:
        ConfigError: invalid parameters.
        DataError: a session folder exists and is not empty (checked before anything is written), unless
            ``overwrite``.
    """
    cfg = SynthConfig(
        num_mice=num_mice, minutes=minutes, seed=seed, size=tuple(size), fps=fps, nuisance=nuisance,
        imaging=imaging, num_sessions=num_sessions, num_neurons=num_neurons, imaging_fs=imaging_fs, tiff=tiff,
    ).validate()  # fmt: skip
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} exists and is not a folder")
    jobs = []
    for a in range(cfg.num_mice):
        for s in range(cfg.num_sessions):
            path = root / animal_name(a) / session_name(s)
            if path.is_dir() and any(path.iterdir()) and not overwrite:
                raise DataError(
                    f"{path} is not empty; refusing to write a synthetic session there "
                    f"(set `overwrite` to replace it)"
                )
            jobs.append((path, a, s))
    if workers is None:
        workers = os.cpu_count() or 1
    workers = max(1, min(int(workers), len(jobs)))
    if progress:
        print(
            f"writing {len(jobs)} synthetic session(s) to {root} with {workers} process(es)", file=sys.stderr
        )
    if workers == 1:
        paths = [generate_session(p, a, s, cfg, overwrite=overwrite, progress=progress) for p, a, s in jobs]
    else:
        # spawn, not fork: the parent may hold torch/OpenMP threads that a forked child would inherit
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            args = [(p, a, s, cfg, overwrite, progress, 1) for p, a, s in jobs]
            paths = [Path(p) for p in pool.map(_session_job, args)]
    manifest = ["animal,session,path"]
    manifest += [f"{animal_name(a)},{session_name(s)},{animal_name(a)}/{session_name(s)}" for _, a, s in jobs]
    write_text_atomic(root / "manifest.csv", "\n".join(manifest) + "\n")
    return paths
