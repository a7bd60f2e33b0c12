"""mouseemo on one CUDA GPU: tests, HOG speed and parity, training and predict throughput, in one table.

It runs what the project already has and collects the results (``--steps`` picks some, by number
or name; each has its own time limit, and a failure becomes a FAIL row while the rest goes on):

1. ``pytest``: ``python -m pytest -m gpu`` (the CUDA tests; they skip without CUDA): counts.
2. ``hog``: frames/s of :func:`mouseemo.ops.hog` on 480x640 frames, CPU and, on the GPU, the torch
   path and the fused cupy kernel, for the settings in ``benchmarks/hog.py``'s ``CONFIGS`` (timed by
   its functions).
3. ``parity``: GPU vs CPU, per backend, from the ``gpu`` tests of ``tests/test_hog.py`` and
   ``tests/test_real_faces.py`` (step 1's results, or a run of those two files). The real frames
   are ``../shared/data/real/facemap_face_frames`` or ``--frames DIR`` (``$MOUSEEMO_GPU_FRAMES``).
4. ``train``: ``python train.py trainer=gpu`` on a small ``mouseemo synth`` dataset (logger=csv,
   baseline=null) ran on the GPU with bf16; ``benchmarks/train_throughput.py --device cuda`` on the
   same data: loader / step / Trainer images/s.
5. ``predict``: ``benchmarks/predict.py`` (decode only, HOG only, CNN only, ``mouseemo predict``
   with ``--device cpu`` and ``cuda``) on a short 480x640 video.
6. ``pipeline``: ``benchmarks/gpu_pipeline.py``: decode (torchcodec/NVDEC when installed, else
   OpenCV) -> HOG + similarity and -> CNN, all on the device, for a 480x640 H.264 video (mp4v when
   OpenCV cannot write H.264): end-to-end fps; goal >= 5,000 fps for decode -> HOG on one H100.

Without CUDA (or with ``--dry-run``) the CPU rows run and the CUDA rows say "skipped: no CUDA", so
the script itself is tested on a CPU. The whole run keeps within ``--budget`` seconds (default 430,
270 with ``--quick``); a check that would start past it is skipped. The table is printed and
written to ``--out`` (default ``$OUT/gpu_check.md`` when ``$OUT`` is set, else ``./gpu_check.md``)
with the rows as JSON beside it and each command's output under ``<out stem>_logs/``;
``--markdown PATH`` also writes it as a results fragment.

On a bare CUDA machine (torch, pytorch-lightning, cupy, opencv, scikit-image ... installed; no
hydra-core, omegaconf, kornia, wandb; mouseemo used from this source tree), after
``bash benchmarks/gpu_wheels.sh`` here has filled ``.whl/``, from the repository root::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && \\
        python3 benchmarks/gpu_check.py --out $OUT/gpu_check.md

Here, on a CPU: ``PYTHONPATH=$PWD python benchmarks/gpu_check.py --quick --out /tmp/gc.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _harness
import hog as hog_bench
from _harness import REPO, Proc, StepTimeout, run_cmd, time_limit

from mouseemo.utils.machine import machine

STEPS = ("pytest", "hog", "parity", "train", "predict", "pipeline")  # numbered from 1
STATUSES = ("ok", "FAIL", "skipped")
NO_CUDA = "skipped: no CUDA"
HOG_SIZE = (480, 640)
PARITY_TESTS = ("tests/test_hog.py", "tests/test_real_faces.py")
GPU_PIPELINE_GOAL = 5000.0  # frames/s, decode -> HOG on one H100-class GPU (benchmarks/gpu_pipeline.py)


@dataclass
class Row:
    """One line of the report: ``figures`` the numbers, ``note`` why it failed or was skipped."""

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


def cells(rows: list[Row]) -> list[list[str]]:
    figures = ("; ".join(f"{k} {_harness.fmt_number(v)}" for k, v in r.figures.items()) for r in rows)
    return [[r.step, r.check, r.result, f, r.status_text, "" if r.seconds is None else f"{r.seconds:.1f}"]
            for r, f in zip(rows, figures)]  # fmt: skip


HEADER = ["step", "check", "result", "figures", "status", "s"]


def markdown_table(rows: list[Row]) -> str:
    return _harness.markdown_table(HEADER, cells(rows), ["---"] * 5 + ["---:"]) + "\n"


def summary_counts(rows: list[Row]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in STATUSES}


class CheckFailed(Exception):
    """A check ran and found something wrong (a FAIL row with this message)."""


# -- the run ----------------------------------------------------------------------------------------
class Run:
    """Options, the device, the time budget, the rows so far, and what earlier steps left."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args, self.quick = args, bool(args.quick)
        self.cuda = torch.cuda.is_available() and not args.dry_run
        self.device = "cuda" if self.cuda else "cpu"
        self.no_cuda_note = "skipped: --dry-run" if args.dry_run and torch.cuda.is_available() else NO_CUDA
        self.rows: list[Row] = []
        self.budget = _harness.Budget(args.budget if args.budget is not None else 270 if self.quick else 430)  # fmt: skip
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mouseemo-gpucheck-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs: Path | None = getattr(args, "logs", None)
        self.junit: Path | None = None  # step 1's results, for step 3
        self.train_root: Path | None = None

    def env(self) -> dict[str, str]:
        """For child processes: the source tree on PYTHONPATH, no GPU with --dry-run, --frames."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
        env.setdefault("HYDRA_FULL_ERROR", "1")
        parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(parts + [str(REPO)] * (str(REPO) not in parts))
        if self.args.dry_run:
            env["CUDA_VISIBLE_DEVICES"] = ""
        if self.args.frames:
            env["MOUSEEMO_GPU_FRAMES"] = str(Path(self.args.frames).resolve())
        return env

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  [{row.status_text}] {row.step} {row.check}: {row.result}".rstrip(), flush=True)
        return row

    def skip_cuda(self, step: str, check: str) -> Row:
        return self.add(Row(step, check, "skipped", note=self.no_cuda_note))

    def guarded(self, step: str, check: str, seconds: float, fn: Callable[[], Row | None]) -> Row | None:
        """``fn()``'s row within ``seconds`` (or the budget left); an exception or a timeout becomes
        a FAIL row and the run goes on. ``fn`` may add its rows itself and return None."""
        limit = min(seconds, self.budget.left())
        if limit < 5:
            return self.add(Row(step, check, "skipped", note="skipped: time budget spent"))
        t0 = time.perf_counter()
        try:
            with time_limit(limit + 20):  # children time out at `limit` themselves, and are reported
                row = fn()
        except (CheckFailed, StepTimeout) as err:
            row = Row(step, check, "FAIL", result=str(err)[:600])
        except Exception as err:  # a bug here or in mouseemo: report it, go on
            tb = traceback.format_exc(limit=-3)
            row = Row(step, check, "FAIL", result=f"{type(err).__name__}: {err}"[:400], note=tb[-800:])
        if row is not None:
            row.seconds = time.perf_counter() - t0 if row.seconds is None else row.seconds
            self.add(row)
        return row

    def cmd(self, name: str, cmd: list, timeout: float) -> Proc:
        return run_cmd(
            cmd,
            min(timeout, self.budget.left()),
            self.logs / f"{name}.log" if self.logs else None,
            self.env(),
        )

    def script(self, name: str, args: list, timeout: float) -> list[dict[str, str]]:
        """``benchmarks/<name>.py ARGS --markdown F``: the rows of the table in its fragment."""
        fragment = self.work / f"{name}.md"
        fragment.unlink(missing_ok=True)
        proc = self.cmd(name, [sys.executable, REPO / "benchmarks" / f"{name}.py", *args, "--markdown", fragment],
                        timeout)  # fmt: skip
        if proc.returncode != 0:
            raise CheckFailed(proc.failure(f"{name}.py"))
        table = _harness.parse_markdown_table(fragment.read_text()) if fragment.is_file() else []
        if not table:
            raise CheckFailed(f"no table in {name}.py's --markdown fragment: {proc.tail(4)}")
        return table


# -- 0 and 1: environment, pytest -m gpu --------------------------------------------------------------
def step_env(run: Run) -> Row:
    import torch

    figures: dict = {"torch": torch.__version__, "torch threads": torch.get_num_threads()}
    for mod in ("pytorch_lightning", "hydra", "kornia", "cupy"):
        with contextlib.suppress(Exception):  # absent, or cupy without a driver
            figures[mod.replace("pytorch_lightning", "lightning")] = __import__(mod).__version__
    needed = ["pytorch_lightning", "hydra", "omegaconf", "kornia", "torchmetrics", "cv2", "skimage", "pytest"]
    missing = ", ".join(m for m in needed if importlib.util.find_spec(m) is None)
    result = machine() + (f", CUDA {torch.version.cuda}" if torch.cuda.is_available() else "")
    result += " (--dry-run: CPU only)" if run.args.dry_run and torch.cuda.is_available() else ""
    return Row("0", "environment", "FAIL" if missing else "ok", result + (f"; missing {missing}" if missing else ""),
               figures, f"missing: {missing}" if missing else "")  # fmt: skip


def junit_cases(junit: Path | None) -> list[tuple[str, str, str]]:
    """(file stem, test name, outcome: passed / failed / skipped: reason) of a JUnit XML file."""
    if junit is None or not junit.is_file():
        return []
    cases = []
    with contextlib.suppress(ET.ParseError):
        for case in ET.parse(junit).getroot().iter("testcase"):
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            skip = case.find("skipped")
            outcome = "failed" if bad is not None else f"skipped: {skip.get('message', '')}" if skip is not None else "passed"  # fmt: skip
            cases.append((case.get("classname", "").rsplit(".", 1)[-1], case.get("name", ""), outcome))
    return cases


def pytest_counts(junit: Path | None) -> dict[str, int]:
    """passed / failed (errors too) / skipped in a JUnit XML file."""
    outcomes = [o.split(":")[0] for _, _, o in junit_cases(junit)]
    return {k: outcomes.count(k) for k in ("passed", "failed", "skipped")}


def run_pytest(run: Run, name: str, paths: tuple[str, ...], timeout: float) -> tuple[Proc, Path]:
    junit = run.work / f"{name}.xml"
    junit.unlink(missing_ok=True)
    proc = run.cmd(name, [sys.executable, "-m", "pytest", *paths, "-m", "gpu", "-q", "-p", "no:cacheprovider",
                          "--durations=5", f"--junitxml={junit}"], timeout)  # fmt: skip
    return proc, junit


def step_pytest(run: Run) -> Row:
    proc, junit = run_pytest(run, "pytest_gpu", (), 150 if run.quick else 240)
    run.junit = junit
    counts = pytest_counts(junit)
    if proc.timed_out:
        return Row("1", "pytest -m gpu", "FAIL", f"timed out after {proc.limit:.0f} s", counts)
    if proc.returncode not in (0, 5) or counts["failed"]:  # 5: nothing collected
        bad = [f"{c}::{n}" for c, n, o in junit_cases(junit) if o == "failed"]
        return Row("1", "pytest -m gpu", "FAIL", f"exit {proc.returncode}: {', '.join(bad[:6]) or proc.tail(4)}", counts)  # fmt: skip
    if not run.cuda and counts["passed"] == 0:
        return Row("1", "pytest -m gpu", "skipped", f"{counts['skipped']} skipped (they need CUDA)", counts,
                   note=run.no_cuda_note)  # fmt: skip
    return Row("1", "pytest -m gpu", "ok", f"{counts['passed']} passed, {counts['skipped']} skipped", counts)


# -- 2: HOG speed (benchmarks/hog.py) ----------------------------------------------------------------
def step_hog_speed(run: Run) -> None:
    import torch

    cpu_n = run.args.hog_cpu_frames or (8 if run.quick else 32)
    gpu_n = run.args.hog_gpu_frames or 256
    reps = 3 if run.quick else 5
    frames = hog_bench.tiled_frames(max(cpu_n, gpu_n if run.cuda else 0), *HOG_SIZE)
    cupy_ok, cupy_why = hog_bench.cupy_state() if run.cuda else (False, run.no_cuda_note)
    for name, kw in list(hog_bench.CONFIGS.items())[: 2 if run.quick else 3]:
        tag = f"{HOG_SIZE[0]}x{HOG_SIZE[1]} uint8, {name}"

        def cpu_row(kw=kw, tag=tag) -> Row:
            r = hog_bench.cpu_rate(frames[:cpu_n], kw, max(2, reps - 2))
            return Row("2", f"HOG CPU ({tag})", "ok", f"{cpu_n} face-like frames, {torch.get_num_threads()} threads",
                       {"fps": r["best"], "median fps": r["median"]})  # fmt: skip

        run.guarded("2", f"HOG CPU ({tag})", 60, cpu_row)
        for backend in ("torch", "cupy"):
            check = f"HOG GPU {backend} ({tag})"
            if not run.cuda:
                run.skip_cuda("2", check)
            elif backend == "cupy" and not cupy_ok:
                status = "skipped" if cupy_why.startswith("skipped") else "FAIL"
                run.add(Row("2", check, status, "" if status == "skipped" else cupy_why, note=cupy_why))
            else:

                def gpu_row(kw=kw, backend=backend, check=check) -> Row:
                    r = hog_bench.gpu_rate(frames[:gpu_n], kw, backend, reps)
                    return Row("2", check, "ok", f"batch {gpu_n} on the GPU, best of {reps}",
                               {"fps": r["best"], "median fps": r["median"], "peak MiB": r["peak MiB"]})  # fmt: skip

                run.guarded("2", check, 60, gpu_row)
                torch.cuda.empty_cache()


# -- 3: HOG parity, from the gpu tests ---------------------------------------------------------------
def parity_row(backend: str, cases: list[tuple[str, str, str]]) -> Row:
    """One backend's GPU-vs-CPU tests (names with ``torch``, or ``fused``/``cupy``) as a row."""
    words = ("torch", "gpu_bins") if backend == "torch" else ("fused", "cupy")
    mine = [(f, n, o) for f, n, o in cases if "gpu" in n and any(w in n for w in words)]
    check = f"HOG parity GPU {backend} vs CPU"
    if not mine:
        return Row("3", check, "FAIL", f"no gpu test for {backend} in {', '.join(PARITY_TESTS)}")
    n = {o: sum(x.startswith(o) for _, _, x in mine) for o in ("passed", "failed", "skipped")}
    real = [o for _, name, o in mine if "real_frames" in name]
    real_text = f"real frames: {sum(o == 'passed' for o in real)} of {len(real)} passed"
    if n["failed"]:
        bad = [f"{f}::{name}" for f, name, o in mine if o == "failed"]
        return Row("3", check, "FAIL", f"{n['failed']} failed: {', '.join(bad[:4])}", n)
    if not n["passed"]:
        return Row("3", check, "skipped", f"{n['skipped']} skipped", n, note=mine[0][2])
    return Row("3", check, "ok", f"{n['passed']} tests passed (tolerance as in the tests); {real_text}", n)


def step_parity(run: Run) -> None:
    if not run.cuda:
        for backend in ("torch", "cupy"):
            run.skip_cuda("3", f"HOG parity GPU {backend} vs CPU")
        return

    def cases() -> Row | None:
        junit = run.junit
        if junit is None or not junit.is_file():
            proc, junit = run_pytest(run, "pytest_parity", PARITY_TESTS, 120 if run.quick else 180)
            if proc.returncode not in (0, 1, 5):
                raise CheckFailed(proc.failure("pytest"))
        found = [c for c in junit_cases(junit) if c[0] in {Path(p).stem for p in PARITY_TESTS}]
        for backend in ("torch", "cupy"):
            run.add(parity_row(backend, found))
        return None

    run.guarded("3", "HOG parity (gpu tests)", 180, cases)


# -- 4: training ---------------------------------------------------------------------------------------
def train_overrides(run: Run, out_dir: Path) -> tuple[list[str], int]:
    """``python train.py`` overrides for a short run on the synthetic dataset, and the batch size."""
    bs, epochs, batches, workers = ((128, 1, 10, 4) if run.quick else (128, 2, 30, 4)) if run.cuda else (32, 1, 4, 0)  # fmt: skip
    over = [
        f"trainer={'gpu' if run.cuda else 'cpu'}", f"data.root={run.train_root}", "data.synthesize=null",
        "logger=csv", "baseline=null", f"paths.root_dir={out_dir}", f"hydra.run.dir={out_dir / 'run'}",
        "debug=limit", f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={batches}",
        "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=5", f"data.batch_size={bs}", "data.train_stride=1",
        f"data.num_workers={workers}", f"data.pin_memory={str(run.cuda).lower()}",
    ]  # fmt: skip
    return over, bs


def gpu_train_problems(log: str) -> list[str]:
    """What Lightning's log of a ``trainer=gpu`` run says went wrong: GPU not used, no bf16 autocast."""
    problems = []
    if not re.search(r"GPU available: True \(cuda\), used: True", log):
        problems.append("the GPU was not used")
    if not re.search(r"Using (bfloat16|bf16) Automatic Mixed Precision", log):
        problems.append("Lightning did not report bf16 mixed precision")
    return problems


def step_train_py(run: Run) -> Row:
    """That ``python train.py`` runs (on the GPU with bf16); its images/s: train_throughput.py's Trainer column."""
    out_dir = run.work / "train_run"
    shutil.rmtree(out_dir, ignore_errors=True)
    over, bs = train_overrides(run, out_dir)
    proc = run.cmd("train_py", [sys.executable, REPO / "train.py", *over], 150 if run.quick else 180)
    if proc.returncode != 0:
        raise CheckFailed(proc.failure("train.py"))
    metrics = json.loads((out_dir / "run" / "metrics.json").read_text())
    figures: dict = {"batch": bs, "wall s": proc.seconds}
    if "test/macro_f1" in metrics:
        figures["test macro F1"] = metrics["test/macro_f1"]
    log = out_dir / "run" / "train.log"
    log_text = proc.output + (log.read_text(errors="replace") if log.is_file() else "")
    if run.cuda and (problems := gpu_train_problems(log_text)):
        raise CheckFailed(f"train.py ran but {' and '.join(problems)}")
    where = "on the GPU with bf16 mixed precision" if run.cuda else "on the CPU (stand-in for trainer=gpu)"
    return Row("4", f"python train.py trainer={'gpu' if run.cuda else 'cpu'}", "ok", f"ran {where}", figures)


def step_train_throughput(run: Run) -> Row:
    sizes, steps, workers = ((["128"] if run.quick else ["256"]), "8" if run.quick else "12", ["0", "4"]) if run.cuda else (["32"], "3", ["0"])  # fmt: skip
    table = run.script("train_throughput", ["--root", run.train_root, "--device", run.device,
                                            "--batch-sizes", *sizes, "--workers", *workers, "--steps", steps],
                       120 if run.quick else 150)  # fmt: skip
    figures: dict = {}
    for r in table:
        for key, value in r.items():
            if key != "batch" and value not in ("", "-"):
                with contextlib.suppress(ValueError):
                    value = float(value)
                figures[f"bs{r.get('batch', '?')} {key}"] = value
    trainer = [v for k, v in figures.items() if "trainer" in k and isinstance(v, float)]
    result = "cuda, bf16 autocast" if run.cuda else "CPU stand-in"
    result += f"; Trainer images/s up to {max(trainer):.0f}" if trainer else ""
    return Row("4", f"train_throughput.py --device {run.device}", "ok", result, figures)


def step_train(run: Run) -> None:
    def data() -> Row:
        root, (mice, minutes) = run.work / "train_data", (3, 1.0) if run.quick or not run.cuda else (4, 2.0)
        kept = (root / "manifest.csv").is_file()
        if not kept:
            proc = run.cmd("synth_train_data", [sys.executable, "-m", "mouseemo", "synth", "--out", root, "--mice", mice,
                                                "--minutes", minutes, "--size", "240x320", "--seed", 0, "--no-imaging"],
                           150)  # fmt: skip
            if proc.returncode != 0:
                raise CheckFailed(proc.failure("mouseemo synth"))
        run.train_root = root
        return Row("4", "mouseemo synth (training set)", "ok", f"{mice} mice x {minutes:g} min, 240x320"
                   + (" (kept in --work)" if kept else ""), {"sessions": len(list(root.glob("*/*/face.mp4")))})  # fmt: skip

    run.guarded("4", "mouseemo synth (training set)", 150, data)
    if run.train_root is None:
        return
    for cuda_check, check, seconds, fn in (
        ("python train.py trainer=gpu (bf16)", "python train.py", 180, step_train_py),
        ("train_throughput.py --device cuda", "train_throughput.py", 150, step_train_throughput),
    ):
        if not run.cuda:
            run.skip_cuda("4", cuda_check)
        run.guarded("4", check, seconds, lambda fn=fn: fn(run))


# -- 5: predict (benchmarks/predict.py) ------------------------------------------------------------------
def step_predict(run: Run) -> None:
    def rows() -> None:
        minutes = ("0.5" if run.quick else "1") if run.cuda else "0.25"
        extra = [] if run.cuda or not run.quick else ["--no-cnn"]
        table = run.script("predict", ["--minutes", minutes, "--repeats", "1", "--hog-frames", "256",
                                       "--cache", run.work / "predict_cache", *extra], 240 if run.quick else 360)  # fmt: skip
        for r in table:
            figures = {k: float(r[k]) for k in ("fps", "CPU ms/frame", "ratio") if r.get(k)}
            if r.get("peak RSS"):
                figures["peak RSS"] = r["peak RSS"]
            dev = r.get("device", "?")
            where = "" if dev == "cuda" or run.cuda else " (stand-in for --device cuda)"
            run.add(Row("5", f"{r.get('stage', '?')} --device {dev}", "ok", f"{minutes} min 480x640 video{where}", figures))  # fmt: skip
        if not run.cuda:
            run.skip_cuda("5", "predict --device cuda")
        elif not any(r.get("device") == "cuda" for r in table):
            raise CheckFailed("predict.py wrote no cuda row")

    run.guarded("5", "benchmarks/predict.py", 360, rows)


def step_pipeline(run: Run) -> None:
    def rows() -> None:
        frames = ("2000" if run.quick else "4000") if run.cuda else "32"
        args = ["--frames", frames, "--cache", run.work / "pipeline_cache", "--device", run.device]
        table = run.script("gpu_pipeline", args + ([] if run.cuda else ["--batch-size", "16"]), 240)
        for r in table:
            fps = float(r["fps"])
            where = "" if run.cuda else " (CPU stand-in)"
            goal = ""
            if run.cuda and r.get("goal"):
                goal = (
                    f"; goal {GPU_PIPELINE_GOAL:,.0f} fps {'met' if fps >= GPU_PIPELINE_GOAL else 'NOT met'}"
                )
            run.add(Row("6", f"{r.get('chain', '?')} on {r.get('device', '?')}", "ok",
                        f"{frames} frames 480x640 {r.get('codec', '?')}, decoder {r.get('decoder', '?')}{where}{goal}",
                        {"fps": fps}))  # fmt: skip
        if not run.cuda:
            run.skip_cuda("6", "decode -> HOG / CNN on the GPU")

    run.guarded("6", "benchmarks/gpu_pipeline.py", 240, rows)


# -- main ---------------------------------------------------------------------------------------------
def parse_steps(values: list[str] | None) -> list[str]:
    chosen = set()
    for v in ",".join(values or STEPS).split(","):
        v = v.strip().lower()
        if v.isdigit() and 1 <= int(v) <= len(STEPS):
            v = STEPS[int(v) - 1]
        if v not in STEPS:
            raise SystemExit(f"gpu_check: unknown step {v!r}; choose from "
                             f"{', '.join(f'{i}/{s}' for i, s in enumerate(STEPS, 1))}")  # fmt: skip
        chosen.add(v)
    return [s for s in STEPS if s in chosen]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="report file (.md; the JSON goes beside it); default $OUT/gpu_check.md or ./gpu_check.md")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="fewer frames, epochs and repetitions")
    p.add_argument("--steps", nargs="+", default=None,
                   help="steps to run, by number or name: 1 pytest, 2 hog, 3 parity, 4 train, 5 predict, 6 pipeline "
                        "(default all)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="CPU only, even with CUDA present")
    p.add_argument("--frames", default=None, help="folder of face images for the parity tests (real frames)")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 430; quick 270)")  # fmt: skip
    p.add_argument("--work", default=None, help="scratch folder, kept (default: a temporary one, removed)")
    p.add_argument("--hog-gpu-frames", type=int, default=None, help="frames per GPU HOG call (default 256)")
    p.add_argument("--hog-cpu-frames", type=int, default=None, help="frames per CPU HOG call (default 32; quick 8)")  # fmt: skip
    return _harness.add_markdown_argument(p)


def write_report(run: Run, out: Path, steps: list[str]) -> tuple[Path, Path]:
    counts = summary_counts(run.rows)
    meta = {"script": "benchmarks/gpu_check.py", "argv": sys.argv[1:], "steps": steps, "quick": run.quick,
            "device": run.device, "seconds": round(run.budget.elapsed(), 1), "budget_s": run.budget.seconds,
            "counts": counts, "machine": machine()}  # fmt: skip
    line = (f"device: {run.device}, {meta['seconds']} s (budget {run.budget.seconds:.0f} s); "
            f"{counts['ok']} ok, {counts['FAIL']} FAIL, {counts['skipped']} skipped")  # fmt: skip
    md = [f"# mouseemo GPU check\n\n{time.strftime('%Y-%m-%d %H:%M:%S')}, {line}\n\n", markdown_table(run.rows)]  # fmt: skip
    for r in (r for r in run.rows if r.status == "FAIL" and r.note):
        md.append(f"\n**{r.step} {r.check}**\n\n```\n{r.note.strip()}\n```\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(md) + (f"\nFull command output: `{run.logs.name}/`.\n" if run.logs else ""))
    js = out.with_suffix(".json") if out.suffix != ".json" else out.with_name(out.stem + "_report.json")
    js.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in run.rows]}, indent=1, default=str))
    if run.args.markdown:
        report = _harness.Report(run.args.markdown)
        report.line(line)
        report.table(HEADER, cells(run.rows), ["---"] * 5 + ["---:"])
        report.write()
    return out, js


def main(argv: list[str] | None = None) -> int:
    import threading

    args = build_parser().parse_args(argv)
    steps = parse_steps(args.steps)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else Path()) / "gpu_check.md"
    out = out / "gpu_check.md" if out.is_dir() else out
    args.logs = out.parent / f"{out.stem}_logs"
    args.logs.mkdir(parents=True, exist_ok=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    run = Run(args)
    print(f"mouseemo GPU check: steps {', '.join(steps)}; device {run.device}; budget {run.budget.seconds:.0f} s; "
          f"work {run.work}", flush=True)  # fmt: skip
    try:
        run.guarded("0", "environment", 30, lambda: step_env(run))
        if "pytest" in steps:
            run.guarded("1", "pytest -m gpu", 240, lambda: step_pytest(run))
        for num, name, fn in ((2, "hog", step_hog_speed), (3, "parity", step_parity),
                              (4, "train", step_train), (5, "predict", step_predict),
                              (6, "pipeline", step_pipeline)):  # fmt: skip
            if name in steps:
                try:  # each check inside is guarded; this catches a bug between them
                    fn(run)
                except Exception as err:
                    run.add(Row(str(num), name, "FAIL", f"step stopped: {type(err).__name__}: {err}"[:400],
                                note=traceback.format_exc(limit=-3)[-800:]))  # fmt: skip
    except KeyboardInterrupt:
        run.add(Row("-", "interrupted", "FAIL", "stopped by Ctrl-C / SIGTERM"))
    finally:
        md, js = write_report(run, out, steps)
        if not args.work:
            shutil.rmtree(run.work, ignore_errors=True)
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
    print("\n" + markdown_table(run.rows))
    counts = summary_counts(run.rows)
    print(f"{counts['ok']} ok, {counts['FAIL']} FAIL, {counts['skipped']} skipped in "
          f"{run.budget.elapsed():.0f} s -> {md} and {js.name}")  # fmt: skip
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
