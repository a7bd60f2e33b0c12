"""What the benchmark scripts share: rates, time budgets, the machine, and results tables that can be
written as markdown fragments.

Imported by the scripts in this folder as a sibling module (``import _harness``: a script's own folder
is on ``sys.path`` when it runs as ``python benchmarks/<script>.py``). Needs numpy and the standard
library only; torch is used when installed (the GPU's name).

A script that prints a results table builds it with a :class:`Report`::

    report = Report(args.markdown, seed=args.seed)   # --markdown PATH, from add_markdown_argument
    report.line("one line of context")
    report.table(["size", "fps"])                     # header, printed at once
    report.row(["256x256", "1234"])                   # each row printed as it comes
    report.write()                                    # the fragment, when --markdown was given

The fragment starts with a header line naming the command, the seed, the machine (CPU model, cores,
GPU if any) and the date, then holds what the report printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import numbers
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mouseemo.utils.machine import results_header

REPO = Path(__file__).resolve().parents[1]


# -- rates ------------------------------------------------------------------------------------------
def best_rate(
    fn: Callable[[], object], items: int, reps: int, sync: Callable[[], None] | None = None
) -> dict[str, float]:
    """Items per second of ``fn`` after one warm-up call: best and median of ``reps`` timed calls
    (``sync``, e.g. ``torch.cuda.synchronize``, after each call)."""
    fn()  # warm-up: caches, kernels, thread pool
    if sync:
        sync()
    times = []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"best": items / times[0], "median": items / times[len(times) // 2]}


def best_fps(
    fn: Callable[[], object], num: int, repeats: int, sync: Callable[[], None] | None = None
) -> float:
    """Frames per second of the fastest of ``repeats`` calls of ``fn`` on ``num`` frames (after a warm-up)."""
    return best_rate(fn, num, repeats, sync)["best"]


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    t = os.times()
    return t.user + t.system


# -- budgets ----------------------------------------------------------------------------------------
class StepTimeout(Exception):
    """An in-process step ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`StepTimeout` in the main thread after ``seconds`` (SIGALRM; no-op elsewhere)."""
    import threading

    if seconds is None or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise StepTimeout(f"timed out after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Budget:
    """A wall-clock budget of ``seconds`` from now."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.t0 = float(seconds), time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.seconds - self.elapsed()


# -- commands -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Proc:
    """What :func:`run_cmd` saw: exit code (``None`` if stopped), seconds, stdout and stderr."""

    returncode: int | None
    seconds: float
    output: str
    timed_out: bool = False
    limit: float = 0.0

    def tail(self, lines: int = 12) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])

    def failure(self, what: str) -> str:
        if self.timed_out:
            return f"{what} timed out after {self.limit:.0f} s: {self.tail(3)}"
        return f"{what} exited with {self.returncode}: {self.tail(6)}"


def run_cmd(cmd: Sequence[object], timeout: float, log: Path | None = None, env: dict | None = None) -> Proc:
    """Run ``cmd`` from the repository root in its own process group; past ``timeout`` seconds the
    whole group is stopped. The command line, exit code and output go to ``log`` when given."""
    t0, timeout = time.perf_counter(), max(1.0, timeout)
    proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)  # fmt: skip

    def stop() -> str:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.communicate(timeout=10)[0]
        return ""

    timed_out = False
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        timed_out, out = True, stop()
    except BaseException:  # the caller's own time limit, Ctrl-C: leave no process behind
        stop()
        raise
    result = Proc(proc.returncode, time.perf_counter() - t0, out or "", timed_out, timeout)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {shlex.join(map(str, cmd))}\n# exit {result.returncode}, {result.seconds:.1f} s"
                       f"{', timed out' if timed_out else ''}\n{result.output}")  # fmt: skip
    return result


# -- the machine ------------------------------------------------------------------------------------
# -- tables and the markdown fragment -----------------------------------------------------------------
def markdown_row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align: str | Sequence[str] = "---"
) -> str:
    """A markdown table (``|`` in cells escaped); ``align``: the separator cell (``---``, ``---:``) of
    every column, or one per column."""
    aligns = [align] * len(header) if isinstance(align, str) else list(align)
    lines = [markdown_row(header), "|" + "|".join(aligns) + "|"]
    return "\n".join([*lines, *(markdown_row(r) for r in rows)])


def fmt_number(value: object) -> str:
    """Numbers for humans: 3 significant digits, whole numbers from 100 up, e-notation below 0.01."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, numbers.Integral):
        return str(value)
    v = float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return "0" if v == 0 else str(v)
    return f"{v:.1e}" if abs(v) < 1e-2 else f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in ``text`` (e.g. a ``--markdown`` fragment), keyed by its header."""
    split = lambda ln: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])]  # noqa: E731
    lines = [ln for ln in text.splitlines() if ln.strip().startswith("|")]
    head = split(lines[0]) if len(lines) > 2 else []
    return [dict(zip(head, cells)) for cells in map(split, lines[2:]) if len(cells) == len(head)]


def add_markdown_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the results as a markdown fragment here (e.g. docs/results/<script>.md), "
        "headed by the command, seed, machine and date",
    )
    return parser


def header_line(seed: object = None, argv: Sequence[str] | None = None) -> str:
    """``_`python benchmarks/x.py ...` · seed S · <machine> · <date>_``."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(REPO)
    return results_header(shlex.join(["python", str(script), *argv[1:]]), seed)


class Report:
    """Prints a benchmark's results and keeps them for a markdown fragment (:meth:`write`)."""

    def __init__(self, path: str | Path | None = None, seed: object = None) -> None:
        self.path = Path(path) if path else None
        self.seed = seed
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        if text and not text.startswith("|") and self.lines and self.lines[-1].startswith("|"):
            self.lines.append("")  # a table ends at a blank line, or the text joins its last row
        print(text, flush=True)
        self.lines.append(text)

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[object]] = (), align: str | Sequence[str] = "---"
    ) -> None:
        """Print a markdown table's header (and ``rows``); later rows with :meth:`row`. The fragment
        gets a blank line before the table, so it renders as a table after a line of text."""
        if self.lines and self.lines[-1]:
            self.lines.append("")
        for text in markdown_table(header, rows, align).splitlines():
            self.line(text)

    def row(self, cells: Sequence[object]) -> None:
        self.line(markdown_row(cells))

    def text(self) -> str:
        return header_line(self.seed) + "\n\n" + "\n".join(self.lines).strip("\n") + "\n"

    def write(self) -> Path | None:
        """Write the fragment to the ``--markdown`` path (its folder made); ``None`` without one."""
        if self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.text())
        print(f"results written to {self.path}", file=sys.stderr)
        return self.path


# -- configs ----------------------------------------------------------------------------------------
def train_config(overrides: Sequence[str], out_dir: str | Path | None = None):
    """``conf/train.yaml`` with ``overrides`` as ``python train.py`` composes it (the ``hydra`` node
    set, mouseemo's resolvers registered); with ``out_dir``, the run's paths under it (``<out_dir>/run``).
    Needs hydra-core."""
    from mouseemo.utils.configs import compose

    paths = [f"paths.root_dir={out_dir}", f"paths.output_dir={out_dir}/run"] if out_dir is not None else []
    return compose("train", [*paths, *overrides], hydra_config=True)


def trained_checkpoint(cache: str | Path, model: str = "motion_cnn", epochs: int = 1) -> Path:
    """A ``model=<model>`` checkpoint trained for ``epochs`` on a small synthetic dataset (three mice,
    48x64 frames; the model's own input size and widths), kept in ``cache`` and reused: a trained
    default model in a minute of CPU, for timing (speed does not depend on how well it is trained)."""
    from mouseemo import tasks
    from mouseemo.testing import write_dataset

    cache = Path(cache)
    ckpt = cache / f"{model}_trained.ckpt"
    if ckpt.is_file():
        return ckpt
    data = cache / "train_data"
    if not data.is_dir():
        write_dataset(data, num_mice=3, num_frames=160)
    over = [f"model={model}", f"data.root={data}", "data.synthesize=null", f"trainer.max_epochs={epochs}",
            "trainer.enable_progress_bar=false", "logger=none", "++baseline=null"]  # fmt: skip
    metrics = tasks.train(train_config(over, cache / f"train_{model}"))
    best = Path(metrics.get("best_ckpt") or cache / f"train_{model}" / "run" / "checkpoints" / "last.ckpt")
    tmp = ckpt.with_name(".tmp_" + ckpt.name)
    tmp.write_bytes(best.read_bytes())
    os.replace(tmp, ckpt)
    return ckpt
