"""mouseemo on one CUDA GPU: tests, HOG speed and parity, training and predict throughput, in one table.

Steps (``--steps`` picks some, by number or name; each has its own time limit, and a failure becomes
a FAIL row while the rest goes on):

1. ``pytest``: ``python -m pytest -m gpu -q`` (the CUDA tests; they skip without CUDA): counts.
2. ``hog``: frames/s of :func:`mouseemo.ops.hog` on 480x640 uint8 frames already on the GPU, torch
   path (``backend="torch"``) and fused cupy kernel (``backend="cupy"``), after a warm-up, best of a
   few synchronised repetitions, for the paper's settings (8 orientations, 32-px cells, 1x1 blocks,
   L2-Hys, square root), 9 orientations with 8-px cells, and scikit-image's defaults; CPU frames/s
   for reference.
3. ``parity``: largest absolute difference of the GPU results (both paths) from the CPU result on
   the same frames (PNG/JPEG/TIFF frames from ``--frames DIR``, or the real face frames in
   ``../shared/data/real/facemap_face_frames`` when present, and frames of a ``mouseemo synth``
   face video), expected <= 1e-5; the CPU result is also compared with scikit-image when installed.
4. ``train``: ``python train.py trainer=gpu`` (bf16 mixed precision) on a small synthetic dataset
   (``mouseemo synth``), logger=csv, baseline=null: that it runs on the GPU with bf16, its images/s
   (Lightning's Timer callback), then ``benchmarks/train_throughput.py --device cuda`` for the
   loader / step / Trainer images/s.
5. ``predict``: ``mouseemo predict --device cuda`` with prototypes (``mouseemo prototypes``) on
   copies of a 480x640 synthetic session, and with the checkpoint step 4 trained, against decoding
   the same video with OpenCV alone: frames/s of each.

Without CUDA (or with ``--dry-run``) every step runs its CPU counterpart (``trainer=cpu``,
``--device cpu``) and the CUDA rows say "skipped: no CUDA", so the script itself is tested on a CPU.
The whole run keeps within ``--budget`` seconds (default 430, 270 with ``--quick``; a running
command may overrun it by ~30 s before it is stopped); a check that would start past it is skipped.

The table is printed and written to ``--out`` (markdown, default ``$OUT/gpu_check.md`` when ``$OUT``
is set, else ``./gpu_check.md``) with the same rows as JSON beside it (``.json``), and each
command's full output under ``<out stem>_logs/``.

On a bare CUDA machine (torch, pytorch-lightning, cupy, opencv, scikit-image ... installed; no
hydra-core, omegaconf, kornia, and mouseemo used from this source tree), after
``bash benchmarks/gpu_wheels.sh`` here has filled ``.whl/``, from the repository root::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \\
        python3 benchmarks/gpu_check.py --out $OUT/gpu_check.md

Every mouseemo command runs as ``python -m mouseemo ...`` (no console script is needed). Here::

    PYTHONPATH=$PWD python benchmarks/gpu_check.py --quick --out /tmp/gc.md
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _harness
import numpy as np
from _harness import REPO, StepTimeout, best_rate, time_limit

#: Steps in running order: (number, name, what).
STEPS: tuple[tuple[int, str, str], ...] = (
    (1, "pytest", "python -m pytest -m gpu"),
    (2, "hog", "HOG frames/s"),
    (3, "parity", "HOG GPU vs CPU"),
    (4, "train", "training images/s"),
    (5, "predict", "mouseemo predict"),
)
STATUSES = ("ok", "FAIL", "skipped")

#: HOG settings timed and compared: the paper's, 9 orientations with 8-px cells (else the paper's),
#: and scikit-image's defaults (3x3 blocks, no square root: the uint8 lookup-table path).
HOG_CONFIGS: dict[str, dict] = {
    "paper 8o/32px/1x1/sqrt": dict(
        orientations=8,
        pixels_per_cell=(32, 32),
        cells_per_block=(1, 1),
        block_norm="L2-Hys",
        transform_sqrt=True,
    ),
    "9o/8px/1x1/sqrt": dict(
        orientations=9,
        pixels_per_cell=(8, 8),
        cells_per_block=(1, 1),
        block_norm="L2-Hys",
        transform_sqrt=True,
    ),
    "skimage 9o/8px/3x3": dict(
        orientations=9,
        pixels_per_cell=(8, 8),
        cells_per_block=(3, 3),
        block_norm="L2-Hys",
        transform_sqrt=False,
    ),
}
PARITY_TOL = 1e-5
FRAME_SIZE = (480, 640)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NO_CUDA = "skipped: no CUDA"


# ----------------------------------------------------------------------------------------------
# Rows, table, timing helpers
# ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the report: ``figures`` holds the numbers (name -> value), ``note`` the reason
    for a FAIL or a skip, ``seconds`` the wall time the row took."""

    step: str
    check: str
    status: str = "ok"
    result: str = ""
    figures: dict = field(default_factory=dict)
    note: str = ""
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {self.status!r}")

    @property
    def status_text(self) -> str:
        if self.status == "skipped" and self.note:
            return self.note if self.note.startswith("skipped") else f"skipped: {self.note}"
        return self.status


def fmt_value(value) -> str:
    """Numbers for humans: 3 significant digits, integers for large values, e-notation for tiny ones."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v == 0:
            return "0"
        if abs(v) < 1e-2:
            return f"{v:.1e}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.3g}"
    return str(value)


def fmt_figures(figures: dict) -> str:
    return "; ".join(f"{k} {fmt_value(v)}" for k, v in figures.items())


def markdown_table(rows: list[Row]) -> str:
    cells = [
        [
            r.step,
            r.check,
            r.result,
            fmt_figures(r.figures),
            r.status_text,
            "" if r.seconds is None else f"{r.seconds:.1f}",
        ]
        for r in rows
    ]
    header = ["step", "check", "result", "figures", "status", "s"]
    return _harness.markdown_table(header, cells, ["---"] * 5 + ["---:"]) + "\n"


def text_table(rows: list[Row], width: int = 60) -> str:
    """The table for a terminal: long cells are cut (the files keep them whole)."""

    def cut(s: str, n: int) -> str:
        return s if len(s) <= n else s[: n - 1] + "…"

    cols = [
        [r.step for r in rows],
        [cut(r.check, 44) for r in rows],
        [cut(r.result, width) for r in rows],
        [cut(fmt_figures(r.figures), width) for r in rows],
        [cut(r.status_text, 40) for r in rows],
        ["" if r.seconds is None else f"{r.seconds:.1f}" for r in rows],
    ]
    names = ["step", "check", "result", "figures", "status", "s"]
    widths = [max([len(n)] + [len(c) for c in col]) for n, col in zip(names, cols)]
    out = ["  ".join(n.ljust(w) for n, w in zip(names, widths))]
    out.append("  ".join("-" * w for w in widths))
    for i in range(len(rows)):
        out.append("  ".join(col[i].ljust(w) for col, w in zip(cols, widths)).rstrip())
    return "\n".join(out)


def summary_counts(rows: list[Row]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in STATUSES}


@dataclass
class Proc:
    returncode: int | None
    seconds: float
    output: str
    timed_out: bool = False
    limit: float = 0.0

    def tail(self, lines: int = 12) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


#: Set by ``--dry-run``: child processes see no GPU either.
HIDE_CUDA = False


def subprocess_env() -> dict[str, str]:
    """This environment with the source tree on PYTHONPATH (``python -m mouseemo`` needs no install)."""
    env = dict(os.environ)
    if HIDE_CUDA:
        env["CUDA_VISIBLE_DEVICES"] = ""
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO) not in parts:
        parts.append(str(REPO))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HYDRA_FULL_ERROR", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_cmd(cmd: list[str], timeout: float, log: Path | None = None, cwd: Path = REPO) -> Proc:
    """Run ``cmd`` in its own process group; past ``timeout`` the whole group is stopped."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(c) for c in cmd], cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True,
    )  # fmt: skip
    timed_out = False

    def stop() -> str:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                return proc.communicate(timeout=wait)[0]
            except subprocess.TimeoutExpired:
                continue
        return ""

    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        out = stop()
    except BaseException:  # the step's own time limit, Ctrl-C: leave no process behind
        stop()
        raise
    result = Proc(proc.returncode, time.perf_counter() - t0, out or "", timed_out, max(1.0, timeout))
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(map(str, cmd))}\n# exit {result.returncode}, {result.seconds:.1f} s"
                       f"{', timed out' if timed_out else ''}\n{result.output}")  # fmt: skip
    return result


class CheckFailed(Exception):
    """A check ran and found something wrong (a FAIL row with this message)."""


def proc_failure(proc: Proc, what: str) -> str:
    if proc.timed_out:
        return f"{what} timed out after {proc.limit:.0f} s: {proc.tail(3)}"
    return f"{what} exited with {proc.returncode}: {proc.tail(6)}"


# ----------------------------------------------------------------------------------------------
# The run: options, budget, data
# ----------------------------------------------------------------------------------------------


class Run:
    """Options, the device, the time budget, the rows so far, and the data built on the way."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.quick = bool(args.quick)
        self.cuda = torch.cuda.is_available() and not args.dry_run
        self.device = "cuda" if self.cuda else "cpu"
        self.no_cuda_note = "skipped: --dry-run" if args.dry_run and torch.cuda.is_available() else NO_CUDA
        self.rows: list[Row] = []
        self.t_start = time.perf_counter()
        self.budget = float(args.budget if args.budget is not None else (270 if self.quick else 430))
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mouseemo-gpucheck-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = args.logs
        self.faces_root: Path | None = None  # 480x640 synthetic session(s)
        self.train_root: Path | None = None  # the training dataset
        self.ckpt: Path | None = None  # step 4's checkpoint, for step 5
        self.reused: list[str] = []  # synthetic datasets found in --work

    # -- time ---------------------------------------------------------------------------------
    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t_start)

    def limit(self, seconds: float) -> float:
        """A step's limit: its own, or what is left of the budget if that is less."""
        return max(0.0, min(seconds, self.left()))

    # -- rows ---------------------------------------------------------------------------------
    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  [{row.status_text}] {row.step} {row.check}: {row.result} {fmt_figures(row.figures)}".rstrip(),
              flush=True)  # fmt: skip
        return row

    def skip_cuda(self, step: str, check: str) -> Row:
        return self.add(Row(step, check, "skipped", note=self.no_cuda_note))

    def guarded(self, step: str, check: str, seconds: float, fn: Callable[[], Row | None]) -> Row | None:
        """Run ``fn`` (which returns its row, or adds rows itself and returns None) within ``seconds``
        (or the budget); any exception or a timeout becomes a FAIL row, and the run goes on."""
        limit = self.limit(seconds)
        if limit < 5:
            return self.add(Row(step, check, "skipped", note="skipped: time budget spent"))
        t0 = time.perf_counter()
        try:
            with time_limit(limit + 20):  # children time out at `limit` themselves, and are reported
                row = fn()
        except CheckFailed as err:
            row = Row(step, check, "FAIL", result=str(err)[:600])
        except StepTimeout as err:
            row = Row(step, check, "FAIL", result=str(err))
        except Exception as err:  # a bug here or in mouseemo: report it, go on
            tb = traceback.format_exc(limit=-3)
            row = Row(step, check, "FAIL", result=f"{type(err).__name__}: {err}"[:400], note=tb[-800:])
            if self.logs:
                (self.logs / f"step{step}_{re.sub(r'[^A-Za-z0-9]+', '_', check)}_error.log").write_text(tb)
        if row is None:
            return None
        if row.seconds is None:
            row.seconds = time.perf_counter() - t0
        return self.add(row)

    def cmd(self, name: str, cmd: list[str], timeout: float) -> Proc:
        log = self.logs / f"{name}.log" if self.logs else None
        return run_cmd(cmd, self.limit(timeout), log)

    # -- synthetic data -----------------------------------------------------------------------
    def synth(self, root: Path, mice: int, minutes: float, size: str, seed: int, timeout: float) -> Path:
        """``mouseemo synth`` into ``root`` (kept from an earlier run with the same ``--work``)."""
        if (root / "manifest.csv").is_file():
            self.reused.append(root.name)
            return root
        proc = self.cmd(
            f"synth_{root.name}",
            [sys.executable, "-m", "mouseemo", "synth", "--out", root, "--mice", mice, "--minutes", minutes,
             "--size", size, "--seed", seed, "--no-imaging"],
            timeout,
        )  # fmt: skip
        if proc.returncode != 0:
            raise CheckFailed(proc_failure(proc, "mouseemo synth"))
        return root


# ----------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------


def read_image_dir(folder: Path, limit: int = 32) -> np.ndarray | None:
    """Grey uint8 frames of the most common size among the images in ``folder`` (None if none)."""
    import cv2

    frames: dict[tuple[int, int], list[np.ndarray]] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is not None and img.ndim == 2 and min(img.shape) >= 32:
            frames.setdefault(img.shape, []).append(img)
    if not frames:
        return None
    best = max(frames.values(), key=len)[:limit]
    return np.stack(best)


def real_frames_dir(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    candidates = []
    if os.environ.get("MOUSEEMO_REAL_DATA"):
        candidates.append(Path(os.environ["MOUSEEMO_REAL_DATA"]) / "facemap_face_frames")
    candidates += [REPO / "shared" / "data" / "real" / "facemap_face_frames",
                   REPO.parent / "shared" / "data" / "real" / "facemap_face_frames"]  # fmt: skip
    return next((c for c in candidates if c.is_dir()), None)


def session_video(root: Path) -> Path:
    videos = sorted(root.glob("*/*/face.mp4"))
    if not videos:
        raise CheckFailed(f"no */*/face.mp4 under {root}")
    return videos[0]


def decode_frames(video: Path, num: int, every: int = 7) -> np.ndarray:
    """``num`` grey frames of ``video``, every ``every``-th one (from the start again if it is short)."""
    import cv2

    out: list[np.ndarray] = []
    for step in (every, 1):
        cap = cv2.VideoCapture(str(video))
        i = 0
        while len(out) < num:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
            i += 1
        cap.release()
        if len(out) >= num:
            break
    if not out:
        raise CheckFailed(f"OpenCV decoded no frame of {video}")
    return np.stack(out[:num])


def tile_frames(frames: np.ndarray, num: int) -> np.ndarray:
    reps = -(-num // len(frames))
    return np.concatenate([frames] * reps)[:num]


# ----------------------------------------------------------------------------------------------
# Step 0: environment
# ----------------------------------------------------------------------------------------------


def step_env(run: Run) -> Row:
    import torch

    figures: dict = {"python": platform.python_version(), "torch": torch.__version__}
    needed = ["pytorch_lightning", "hydra", "omegaconf", "kornia", "torchmetrics", "cv2", "skimage", "pytest"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    for mod in ("pytorch_lightning", "hydra", "kornia", "cupy"):
        if importlib.util.find_spec(mod) is not None:
            try:
                figures[mod.replace("pytorch_lightning", "lightning")] = __import__(mod).__version__
            except Exception as err:  # cupy without a driver, for one
                figures[mod] = f"import failed ({type(err).__name__})"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        result = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
        figures["bf16"] = torch.cuda.is_bf16_supported()
        if run.args.dry_run:
            result += " (--dry-run: CPU only)"
    else:
        result = f"no CUDA: CPU only ({os.cpu_count()} cores)"
    figures["torch threads"] = torch.get_num_threads()
    status = "FAIL" if missing else "ok"
    note = f"missing: {', '.join(missing)}" if missing else ""
    return Row("0", "environment", status, result + (f"; missing {', '.join(missing)}" if missing else ""),
               figures, note)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Step 1: pytest -m gpu
# ----------------------------------------------------------------------------------------------


def pytest_counts(junit: Path | None, output: str) -> dict[str, int]:
    """passed/failed/errors/skipped from a JUnit XML file, else from pytest's summary line."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    if junit is not None and junit.is_file():
        try:
            root = ET.parse(junit).getroot()
            suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
            for s in suites:
                tests = int(s.get("tests", 0))
                failed, errors, skipped = (int(s.get(k, 0)) for k in ("failures", "errors", "skipped"))
                counts["failed"] += failed
                counts["errors"] += errors
                counts["skipped"] += skipped
                counts["passed"] += tests - failed - errors - skipped
            return counts
        except (ET.ParseError, ValueError):
            pass
    line = next((ln for ln in reversed(output.splitlines()) if re.search(r"\d+ (passed|failed|skipped|deselected|error)", ln)), "")  # fmt: skip
    for num, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", line):
        counts["errors" if word.startswith("error") else word] += int(num)
    return counts


def failed_tests(junit: Path | None) -> list[str]:
    if junit is None or not junit.is_file():
        return []
    out = []
    with contextlib.suppress(ET.ParseError):
        for case in ET.parse(junit).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                out.append(f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}")
    return out


def step_pytest(run: Run) -> Row:
    timeout = 150 if run.quick else 240
    junit = run.work / "pytest_gpu.xml"
    junit.unlink(missing_ok=True)
    proc = run.cmd(
        "pytest_gpu",
        [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "--durations=5",
         f"--junitxml={junit}"],
        timeout,
    )  # fmt: skip
    counts = pytest_counts(junit, proc.output)
    figures = {k: v for k, v in counts.items() if v or k in ("passed", "skipped")}
    bad = failed_tests(junit)
    if proc.timed_out:
        return Row("1", "pytest -m gpu", "FAIL", f"timed out after {proc.limit:.0f} s", figures)
    if proc.returncode not in (0, 5) or counts["failed"] or counts["errors"]:  # 5: nothing collected
        what = ", ".join(bad[:6]) or proc.tail(4)
        return Row("1", "pytest -m gpu", "FAIL", f"exit {proc.returncode}: {what}", figures)
    if not run.cuda and counts["passed"] == 0:
        return Row("1", "pytest -m gpu", "skipped", f"{counts['skipped']} skipped (they need CUDA)", figures,
                   note=run.no_cuda_note if run.args.dry_run else NO_CUDA)  # fmt: skip
    return Row("1", "pytest -m gpu", "ok", f"{counts['passed']} passed, {counts['skipped']} skipped", figures)


# ----------------------------------------------------------------------------------------------
# Step 2: HOG speed
# ----------------------------------------------------------------------------------------------


def speed_frames(run: Run, num: int) -> tuple[np.ndarray, str]:
    """480x640 frames to time: the synthetic face video's when it exists, else face-like noise."""
    if run.faces_root is not None:
        with contextlib.suppress(Exception):
            frames = decode_frames(session_video(run.faces_root), min(num, 64))
            if frames.shape[1:] == FRAME_SIZE:
                return tile_frames(frames, num), "synthetic face video"
    from mouseemo.testing import face_like_frames

    return face_like_frames(min(num, 16), *FRAME_SIZE, lo=20, hi=235).repeat(-(-num // 16), axis=0)[
        :num
    ], "face-like noise"


def cupy_state(run: Run) -> tuple[bool, str]:
    """(usable, why not): tried through the public switch, ``hog(..., backend="cupy")``."""
    if not run.cuda:
        return False, run.no_cuda_note
    if importlib.util.find_spec("cupy") is None:
        return False, "skipped: cupy not installed"
    import torch

    from mouseemo.errors import ConfigError
    from mouseemo.ops import hog

    try:
        hog(torch.zeros((1, 64, 64), dtype=torch.uint8, device="cuda"), backend="cupy")
    except ConfigError as err:
        return False, f"cupy path unusable: {err}"
    except Exception as err:  # anything else the kernel raised
        return False, f"cupy path failed: {type(err).__name__}: {err}"
    return True, ""


def step_hog_speed(run: Run) -> None:
    import torch

    from mouseemo.ops import hog

    quick = run.quick
    cpu_frames_n = run.args.hog_cpu_frames or (8 if quick else 32)
    gpu_frames_n = run.args.hog_gpu_frames or 256
    reps = 3 if quick else 5
    configs = list(HOG_CONFIGS.items())[: 2 if quick else 3]
    frames, source = speed_frames(run, max(cpu_frames_n, gpu_frames_n if run.cuda else 0))
    host = torch.from_numpy(frames)
    cupy_ok, cupy_why = cupy_state(run) if run.cuda else (False, run.no_cuda_note)
    for name, kw in configs:
        tag = f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]} uint8, {name}"

        def cpu_row(kw=kw, tag=tag) -> Row:
            x = host[:cpu_frames_n].contiguous()
            r = best_rate(lambda: hog(x, **kw), len(x), max(2, reps - 2))
            return Row("2", f"HOG CPU ({tag})", "ok", f"{len(x)} frames, {source}, "
                       f"{torch.get_num_threads()} threads", {"fps": r["best"], "median fps": r["median"]})  # fmt: skip

        run.guarded("2", f"HOG CPU ({tag})", 60, cpu_row)
        for backend in ("torch", "cupy"):
            check = f"HOG GPU {backend} ({tag})"
            if not run.cuda:
                run.skip_cuda("2", check)
                continue
            if backend == "cupy" and not cupy_ok:
                status = "skipped" if cupy_why.startswith("skipped") else "FAIL"
                run.add(Row("2", check, status, "" if status == "skipped" else cupy_why, note=cupy_why))
                continue

            def gpu_row(kw=kw, backend=backend, check=check) -> Row:
                g = host[:gpu_frames_n].to("cuda")
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                r = best_rate(lambda: hog(g, **kw, backend=backend), len(g), reps, torch.cuda.synchronize)
                peak = torch.cuda.max_memory_allocated() / 2**20
                return Row("2", check, "ok", f"batch {gpu_frames_n} on the GPU, best of {reps}",
                           {"fps": r["best"], "median fps": r["median"], "peak MiB": peak})  # fmt: skip

            run.guarded("2", check, 60, gpu_row)
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# Step 3: HOG parity
# ----------------------------------------------------------------------------------------------


def parity_sets(run: Run) -> list[tuple[str, np.ndarray]]:
    sets = []
    folder = real_frames_dir(run.args.frames)
    if folder is not None:
        frames = read_image_dir(folder)
        if frames is None:
            if run.args.frames:
                raise CheckFailed(f"--frames {folder}: no readable image")
        else:
            sets.append(
                (f"{len(frames)} frames {frames.shape[1]}x{frames.shape[2]} from {folder.name}", frames)
            )
    if run.faces_root is not None:
        frames = decode_frames(session_video(run.faces_root), 8 if run.quick else 24)
        sets.append((f"{len(frames)} synthetic frames {frames.shape[1]}x{frames.shape[2]}", frames))
    if not sets:
        from mouseemo.testing import face_like_frames

        frames = face_like_frames(4, *FRAME_SIZE, seed=3, lo=20, hi=235)
        sets.append((f"{len(frames)} face-like noise frames", frames))
    return sets


def step_parity(run: Run) -> None:
    import torch

    from mouseemo.ops import hog

    found: dict = {}

    def load() -> None:  # adds no row unless it fails
        found["sets"] = parity_sets(run)

    run.guarded("3", "HOG parity frames", 60, load)
    if "sets" not in found:
        return
    sets = found["sets"]
    configs = list(HOG_CONFIGS.items())
    cpu_ref: dict[tuple[int, str], np.ndarray] = {}

    def cpu_vs_skimage() -> Row:
        figures, worst, bad, total = {}, 0.0, 0, 0
        have_sk = importlib.util.find_spec("skimage") is not None
        for i, (_, frames) in enumerate(sets):
            for name, kw in configs:
                cpu = hog(torch.from_numpy(frames), **kw).double().numpy()
                cpu_ref[(i, name)] = cpu
                if have_sk:
                    from skimage.feature import hog as sk_hog

                    k = 4 if run.quick else 8
                    ref = np.stack([sk_hog(f, **kw, feature_vector=True) for f in frames[:k]])
                    diff = np.abs(cpu[:k] - ref)
                    worst = max(worst, float(diff.max()))
                    bad += int((diff > PARITY_TOL).sum())
                    total += diff.size
                    figures[f"{name} set{i + 1}"] = float(diff.max())
        if not have_sk:
            return Row("3", "HOG CPU vs scikit-image", "skipped", "CPU features computed",
                       note="skipped: scikit-image not installed")  # fmt: skip
        figures[f"values > {PARITY_TOL:g}"] = bad
        labels = "; ".join(f"set{i + 1}: {lab}" for i, (lab, _) in enumerate(sets))
        # mouseemo decides near-tie bins with the installed numpy's arctan2, as scikit-image does:
        # every value must agree within the tolerance
        status = "ok" if bad == 0 else "FAIL"
        why = "" if bad == 0 else ", values outside the tolerance"
        return Row("3", "HOG CPU vs scikit-image", status,
                   f"max |diff| {worst:.1e} at {bad} of {total} values{why} ({labels})", figures)  # fmt: skip

    run.guarded("3", "HOG CPU vs scikit-image", 90 if not run.quick else 60, cpu_vs_skimage)
    cupy_ok, cupy_why = cupy_state(run) if run.cuda else (False, run.no_cuda_note)
    for backend in ("torch", "cupy"):
        check = f"HOG parity GPU {backend} vs CPU"
        if not run.cuda:
            run.skip_cuda("3", check)
            continue
        if backend == "cupy" and not cupy_ok:
            status = "skipped" if cupy_why.startswith("skipped") else "FAIL"
            run.add(Row("3", check, status, "" if status == "skipped" else cupy_why, note=cupy_why))
            continue

        def gpu_vs_cpu(backend=backend, check=check) -> Row:
            figures, worst, bad = {}, 0.0, 0
            for i, (_, frames) in enumerate(sets):
                g = torch.from_numpy(frames).to("cuda")
                for name, kw in configs:
                    cpu = cpu_ref.get((i, name))
                    if cpu is None:
                        cpu = hog(torch.from_numpy(frames), **kw).double().numpy()
                    out = hog(g, **kw, backend=backend)
                    if not out.is_cuda:
                        raise CheckFailed(f"backend={backend} returned a {out.device} tensor")
                    diff = np.abs(out.double().cpu().numpy() - cpu)
                    worst = max(worst, float(diff.max()))
                    bad += int((diff > PARITY_TOL).sum())
                    figures[f"{name} set{i + 1}"] = float(diff.max())
            figures[f"values > {PARITY_TOL:g}"] = bad
            status = "ok" if worst <= PARITY_TOL else "FAIL"
            expect = "<=" if status == "ok" else ">"
            return Row("3", check, status, f"max |diff| {worst:.1e} ({expect} {PARITY_TOL:g}), "
                       f"{len(sets)} frame set(s) x {len(configs)} settings", figures)  # fmt: skip

        run.guarded("3", check, 60, gpu_vs_cpu)
    if run.cuda:
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# Step 4: training
# ----------------------------------------------------------------------------------------------


def train_overrides(run: Run, out_dir: Path) -> tuple[list[str], int]:
    """``python train.py`` overrides for a short run on the synthetic dataset, and the batch size."""
    if run.cuda:
        bs, epochs, batches, workers = (128, 1, 10, 4) if run.quick else (128, 2, 30, 4)
    else:
        bs, epochs, batches, workers = 32, 1, 4, 0
    over = [
        f"trainer={'gpu' if run.cuda else 'cpu'}", f"data.root={run.train_root}", "data.synthesize=null",
        "logger=csv", "baseline=null", f"paths.root_dir={out_dir}", f"hydra.run.dir={out_dir / 'run'}",
        "debug=limit", f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={batches}",
        "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=5", f"data.batch_size={bs}", "data.train_stride=1",
        f"data.num_workers={workers}", f"data.pin_memory={str(run.cuda).lower()}",
        "+callbacks.timer._target_=pytorch_lightning.callbacks.Timer",
    ]  # fmt: skip
    return over, bs


def read_timer(ckpt: Path) -> tuple[int, float]:
    """(optimizer steps, seconds of the ``train`` stage) recorded by Lightning's Timer in ``ckpt``."""
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    timer = next((v for k, v in state.get("callbacks", {}).items() if "Timer" in str(k)), None)
    if not timer:
        raise CheckFailed(f"{ckpt.name} holds no Timer state")
    return int(state.get("global_step", 0)), float(timer["time_elapsed"]["train"])


def gpu_train_problems(log: str) -> list[str]:
    """What Lightning's log of a ``trainer=gpu`` run says went wrong: GPU not used, no bf16 autocast."""
    problems = []
    if not re.search(r"GPU available: True \(cuda\), used: True", log):
        problems.append("the GPU was not used")
    if not re.search(r"Using (bfloat16|bf16) Automatic Mixed Precision", log):
        problems.append("Lightning did not report bf16 mixed precision")
    return problems


def step_train_py(run: Run) -> Row:
    check = f"python train.py trainer={'gpu' if run.cuda else 'cpu'}"
    out_dir = run.work / "train_run"
    shutil.rmtree(out_dir, ignore_errors=True)
    over, bs = train_overrides(run, out_dir)
    timeout = 150 if run.quick else 180
    proc = run.cmd("train_py", [sys.executable, str(REPO / "train.py"), *over], timeout)
    if proc.returncode != 0:
        raise CheckFailed(proc_failure(proc, "train.py"))
    run_dir = out_dir / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    best = metrics.get("best_ckpt") or ""
    last = run_dir / "checkpoints" / "last.ckpt"
    run.ckpt = Path(best) if best and Path(best).is_file() else (last if last.is_file() else None)
    figures: dict = {}
    if last.is_file():
        steps, seconds = read_timer(last)
        figures["images/s (Timer: fit incl. val, start-up)"] = steps * bs / max(seconds, 1e-9)
        figures["steps"] = steps
    figures["batch"] = bs
    figures["wall s"] = proc.seconds
    if "test/macro_f1" in metrics:
        figures["test macro F1"] = metrics["test/macro_f1"]
    log = run_dir / "train.log"
    text = proc.output + (log.read_text(errors="replace") if log.is_file() else "")
    if run.cuda:
        problems = gpu_train_problems(text)
        if problems:
            raise CheckFailed(f"train.py ran but {' and '.join(problems)}")
        result = "ran on the GPU with bf16 mixed precision"
    else:
        result = "ran on the CPU (stand-in for trainer=gpu)"
    return Row(
        "4", check, "ok", result + ("; checkpoint written" if run.ckpt else "; no checkpoint"), figures
    )


def parse_md_table(text: str) -> list[dict[str, str]]:
    """Rows of the first markdown table in ``text`` as dicts keyed by its header."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    if len(lines) < 3:
        return []
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if len(cells) == len(head):
            rows.append(dict(zip(head, cells)))
    return rows


def step_train_throughput(run: Run) -> Row:
    script = REPO / "benchmarks" / "train_throughput.py"
    if not script.is_file():
        return Row(
            "4", "train_throughput.py", "skipped", note="skipped: benchmarks/train_throughput.py absent"
        )
    if run.cuda:
        sizes, steps, workers = (["128"], "8", ["0", "4"]) if run.quick else (["256"], "12", ["0", "4"])
    else:
        sizes, steps, workers = ["32"], "3", ["0"]
    cmd = [sys.executable, str(script), "--root", str(run.train_root), "--device", run.device,
           "--batch-sizes", *sizes, "--workers", *workers, "--steps", steps]  # fmt: skip
    timeout = 120 if run.quick else 150
    proc = run.cmd("train_throughput", cmd, timeout)
    if proc.returncode != 0:
        raise CheckFailed(proc_failure(proc, "train_throughput.py"))
    table = parse_md_table(proc.output)
    if not table:
        raise CheckFailed(f"no table in train_throughput.py's output: {proc.tail(4)}")
    figures = {}
    for r in table:
        b = r.get("batch", "?")
        for key, value in r.items():
            if key == "batch":
                continue
            with contextlib.suppress(ValueError):
                figures[f"bs{b} {key}"] = float(value)
            if key == "GPU util" and value not in ("", "-"):
                figures[f"bs{b} GPU util"] = value
    dev = "cuda, bf16 autocast" if run.cuda else "CPU stand-in"
    trainer_cols = [v for k, v in figures.items() if "trainer" in k and isinstance(v, float)]
    result = f"{dev}; Trainer images/s up to {max(trainer_cols):.0f}" if trainer_cols else dev
    return Row("4", f"train_throughput.py --device {run.device}", "ok", result, figures)


def step_train(run: Run) -> None:
    def data() -> Row:
        if run.quick or not run.cuda:
            mice, minutes = 3, 1.0
        else:
            mice, minutes = 4, 2.0
        run.train_root = run.synth(run.work / "train_data", mice, minutes, "240x320", 0, 150)
        kept = " (kept in --work)" if "train_data" in run.reused else ""
        return Row("4", "mouseemo synth (training set)", "ok", f"{mice} mice x {minutes:g} min, 240x320{kept}",
                   {"sessions": len(list(run.train_root.glob("*/*/face.mp4")))})  # fmt: skip

    run.guarded("4", "mouseemo synth (training set)", 150, data)
    if run.train_root is None:
        return
    if not run.cuda:
        run.skip_cuda("4", "python train.py trainer=gpu (bf16)")
    run.guarded("4", "python train.py", 180, lambda: step_train_py(run))
    if not run.cuda:
        run.skip_cuda("4", "train_throughput.py --device cuda")
    run.guarded("4", "train_throughput.py", 150, lambda: step_train_throughput(run))


# ----------------------------------------------------------------------------------------------
# Step 5: predict
# ----------------------------------------------------------------------------------------------


def decode_rate(video: Path, passes: int) -> dict:
    """Frames/s of decoding ``video`` with OpenCV and converting to grey (what predict reads), best pass."""
    import cv2

    best, n = float("inf"), 0
    for _ in range(max(1, passes)):
        cap = cv2.VideoCapture(str(video))
        n, t0 = 0, time.perf_counter()
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            n += 1
        cap.release()
        best = min(best, time.perf_counter() - t0)
    if n == 0:
        raise CheckFailed(f"OpenCV decoded no frame of {video}")
    return {"fps": n / best, "frames": n}


def predict_summaries(out_dir: Path) -> tuple[int, int, float, set[str]]:
    """(videos, frames, processing seconds, devices) over the per-video JSON files predict wrote."""
    videos, frames, seconds, devices = 0, 0, 0.0, set()
    for path in out_dir.rglob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            d = json.loads(path.read_text())
            proc = d.get("processing") if isinstance(d, dict) else None
            if proc:
                videos += 1
                frames += int(d.get("frames", 0))
                seconds += float(proc.get("seconds", 0.0))
                devices.add(str(proc.get("device")))
    return videos, frames, seconds, devices


def step_predict(run: Run) -> None:
    state: dict = {}

    def prepare() -> Row:
        if run.faces_root is None:
            raise CheckFailed("no synthetic 480x640 session (mouseemo synth failed)")
        video = session_video(run.faces_root)
        copies = run.work / "predict_videos"
        shutil.rmtree(copies, ignore_errors=True)
        copies.mkdir()
        n = 1 if (run.quick or not run.cuda) else 4
        for k in range(n):  # the same video under several names: a longer run, no re-encoding
            dst = copies / f"face{k:02d}.mp4"
            try:
                os.link(video, dst)
            except OSError:
                shutil.copyfile(video, dst)
        protos = run.work / "protos.npz"
        timeout = 90
        proc = run.cmd("prototypes", [sys.executable, "-m", "mouseemo", "prototypes", video.parent, "--out", protos,
                                      "--device", run.device, "--overwrite"], timeout)  # fmt: skip
        if proc.returncode != 0:
            raise CheckFailed(proc_failure(proc, "mouseemo prototypes"))
        state.update(video=video, copies=copies, protos=protos, n=n)
        return Row("5", f"mouseemo prototypes --device {run.device}", "ok", f"from {video.parent.name}, "
                   f"{n} copy(ies) of a 480x640 session to score", {"wall s": proc.seconds})  # fmt: skip

    run.guarded("5", "mouseemo prototypes", 90, prepare)
    if not state:
        return

    def decode() -> Row:
        r = decode_rate(state["video"], 1 if run.quick else 2)
        state["decode_fps"] = r["fps"]
        return Row("5", "decode only (OpenCV, to grey)", "ok", f"{r['frames']} frames 480x640 mp4, one thread",
                   {"fps": r["fps"]})  # fmt: skip

    run.guarded("5", "decode only (OpenCV)", 60, decode)

    def predict(model: list[str], label: str) -> Row:
        out = run.work / f"predict_out_{label}"
        shutil.rmtree(out, ignore_errors=True)
        timeout = 120 if run.quick else 180
        proc = run.cmd(
            f"predict_{label.strip('-')}",
            [sys.executable, "-m", "mouseemo", "predict", state["copies"], *model, "--out", out,
             "--device", run.device, "--batch-size", "256", "--overwrite", "--quiet"],
            timeout,
        )  # fmt: skip
        if proc.returncode != 0:
            raise CheckFailed(proc_failure(proc, "mouseemo predict"))
        videos, frames, seconds, devices = predict_summaries(out)
        if videos != state["n"] or frames == 0:
            raise CheckFailed(
                f"mouseemo predict wrote {videos} of {state['n']} per-video JSON files: {proc.tail(4)}"
            )
        if run.cuda and not all(d.startswith("cuda") for d in devices):
            raise CheckFailed(f"predict --device cuda reported device(s) {sorted(devices)}")
        figures = {
            "fps (processing)": frames / max(seconds, 1e-9),
            "fps (whole command)": frames / proc.seconds,
        }
        if state.get("decode_fps"):
            figures["vs decode only"] = figures["fps (processing)"] / state["decode_fps"]
        where = "the GPU" if run.cuda else "the CPU (stand-in for --device cuda)"
        return Row("5", f"predict {label} --device {run.device}", "ok",
                   f"{frames} frames ({state['n']} video(s)) on {where}", figures)  # fmt: skip

    if not run.cuda:
        run.skip_cuda("5", "predict --prototypes --device cuda")
    run.guarded("5", "predict --prototypes", 180, lambda: predict(["--prototypes", str(state["protos"])], "--prototypes"))  # fmt: skip
    if not run.cuda:
        run.skip_cuda("5", "predict --ckpt --device cuda")
    if run.ckpt is None:
        run.add(Row("5", "predict --ckpt", "skipped", note="skipped: no checkpoint from step 4"))
    else:
        ckpt = run.ckpt
        run.guarded("5", "predict --ckpt", 180, lambda: predict(["--ckpt", str(ckpt)], "--ckpt"))


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def default_out() -> Path:
    return Path(os.environ["OUT"]) / "gpu_check.md" if os.environ.get("OUT") else Path("gpu_check.md")


def parse_steps(values: list[str] | None) -> list[str]:
    if not values:
        return [name for _, name, _ in STEPS]
    by_num = {str(n): name for n, name, _ in STEPS}
    names = {name for _, name, _ in STEPS}
    chosen = set()
    for v in ",".join(values).split(","):
        v = v.strip().lower()
        if not v:
            continue
        if v in by_num:
            chosen.add(by_num[v])
        elif v in names:
            chosen.add(v)
        else:
            raise SystemExit(
                f"gpu_check: unknown step {v!r}; choose from {', '.join(f'{n}/{m}' for n, m, _ in STEPS)}"
            )
    return [name for _, name, _ in STEPS if name in chosen]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="report file (.md; the JSON goes beside it); default $OUT/gpu_check.md or ./gpu_check.md")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="fewer frames, epochs and repetitions")
    p.add_argument("--steps", nargs="+", default=None,
                   help="steps to run, by number or name: 1 pytest, 2 hog, 3 parity, 4 train, 5 predict (default all)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="CPU only, even with CUDA present")
    p.add_argument("--frames", default=None, help="folder of face images for the parity step")
    p.add_argument(
        "--budget", type=float, default=None, help="seconds for the whole run (default 430; quick 270)"
    )
    p.add_argument("--work", default=None, help="scratch folder, kept (default: a temporary one, removed)")
    p.add_argument("--hog-gpu-frames", type=int, default=None, help="frames per GPU HOG call (default 256)")
    p.add_argument(
        "--hog-cpu-frames", type=int, default=None, help="frames per CPU HOG call (default 32; quick 8)"
    )
    return p


def write_report(run: Run, out: Path, steps: list[str]) -> tuple[Path, Path]:
    counts = summary_counts(run.rows)
    meta = {
        "script": "benchmarks/gpu_check.py", "argv": sys.argv[1:], "steps": steps, "quick": run.quick,
        "device": run.device, "seconds": round(time.perf_counter() - run.t_start, 1),
        "budget_s": run.budget, "counts": counts, "host": platform.node(),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    md = [
        "# mouseemo GPU check\n\n",
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, device: {run.device}, {meta['seconds']} s "
        f"(budget {run.budget:.0f} s); {counts['ok']} ok, {counts['FAIL']} FAIL, {counts['skipped']} skipped\n\n",
        markdown_table(run.rows),
    ]
    notes = [r for r in run.rows if r.status == "FAIL" and r.note]
    if notes:
        md.append("\n## Failure details\n")
        for r in notes:
            md.append(f"\n**{r.step} {r.check}**\n\n```\n{r.note.strip()}\n```\n")
    if run.logs:
        md.append(f"\nFull command output: `{run.logs.name}/`.\n")
    out.write_text("".join(md))
    js = out.with_suffix(".json") if out.suffix != ".json" else out.with_name(out.stem + "_report.json")
    js.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in run.rows]}, indent=1, default=str))
    return out, js


def main(argv: list[str] | None = None) -> int:
    global HIDE_CUDA
    import threading

    args = build_parser().parse_args(argv)
    steps = parse_steps(args.steps)
    out = args.out or default_out()
    if out.is_dir():
        out = out / "gpu_check.md"
    args.logs = out.parent / f"{out.stem}_logs"
    args.logs.mkdir(parents=True, exist_ok=True)
    main_thread = threading.current_thread() is threading.main_thread()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    HIDE_CUDA = bool(args.dry_run)
    try:
        run = Run(args)
        print(f"mouseemo GPU check: steps {', '.join(steps)}; device {run.device}; budget {run.budget:.0f} s; "
              f"work {run.work}", flush=True)  # fmt: skip
        md, js = run_steps(run, steps, out)
    finally:
        HIDE_CUDA = False
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
    print()
    print(text_table(run.rows))
    counts = summary_counts(run.rows)
    print(f"\n{counts['ok']} ok, {counts['FAIL']} FAIL, {counts['skipped']} skipped in "
          f"{time.perf_counter() - run.t_start:.0f} s -> {md} and {js.name}")  # fmt: skip
    return 1 if counts["FAIL"] else 0


def run_steps(run: Run, steps: list[str], out: Path) -> tuple[Path, Path]:
    """Run the chosen steps in order and write the report (also when interrupted)."""
    args = run.args
    try:
        run.guarded("0", "environment", 30, lambda: step_env(run))
        if "pytest" in steps:
            run.guarded("1", "pytest -m gpu", 240, lambda: step_pytest(run))
        need_faces = "predict" in steps or ("parity" in steps and real_frames_dir(args.frames) is None)
        if need_faces:

            def faces() -> Row:
                run.faces_root = run.synth(
                    run.work / "faces", 1, 1.0, f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}", 3, 120
                )
                kept = " (kept in --work)" if "faces" in run.reused else ""
                return Row("-", "mouseemo synth (480x640 face)", "ok", f"1 session, 1 min, 20 fps{kept}",
                           {"MB": session_video(run.faces_root).stat().st_size / 2**20})  # fmt: skip

            run.guarded("-", "mouseemo synth (480x640 face)", 120, faces)
        for num, name, fn in ((2, "hog", step_hog_speed), (3, "parity", step_parity),
                              (4, "train", step_train), (5, "predict", step_predict)):  # fmt: skip
            if name not in steps:
                continue
            try:  # each check inside is guarded; this catches a bug between them
                fn(run)
            except Exception as err:
                run.add(Row(str(num), name, "FAIL", f"step stopped: {type(err).__name__}: {err}"[:400],
                            note=traceback.format_exc(limit=-3)[-800:]))  # fmt: skip
    except KeyboardInterrupt:
        run.add(Row("-", "interrupted", "FAIL", "stopped by Ctrl-C / SIGTERM"))
    finally:
        paths = write_report(run, out, steps)
        if not args.work:
            shutil.rmtree(run.work, ignore_errors=True)
    return paths


if __name__ == "__main__":
    sys.exit(main())
