"""benchmarks/gpu_check.py: its table and timing helpers, and a CPU dry run of the HOG speed step."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("mouseemo_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(SCRIPT.parent))  # its sibling _harness, as when run as a script
        try:
            spec.loader.exec_module(module)
            yield module
        finally:
            sys.modules.pop(spec.name, None)


def test_rows_and_tables(gc):
    rows = [
        gc.Row("2", "HOG CPU", "ok", "8 frames", {"fps": 123.456, "max |diff|": 3e-8, "n": 3}, seconds=1.25),
        gc.Row("2", "HOG GPU torch", "skipped", note=gc.NO_CUDA),
        gc.Row("4", "train | bf16", "FAIL", "exit 1"),
    ]
    md = gc.markdown_table(rows).splitlines()
    assert md[0].startswith("| step | check | result | figures | status |")
    assert len(md) == 2 + len(rows) and all(line.count(" | ") == 5 for line in md[2:])
    assert "fps 123; max \\|diff\\| 3.0e-08; n 3" in md[2] and md[2].endswith("| ok | 1.2 |")
    assert "skipped: no CUDA" in md[3] and "train \\| bf16" in md[4]
    assert gc.summary_counts(rows) == {"ok": 1, "FAIL": 1, "skipped": 1}
    assert len(gc.text_table(rows).splitlines()) == 2 + len(rows)
    with pytest.raises(ValueError):
        gc.Row("1", "x", "passed")


def test_rates_and_counts(gc):
    calls = []
    rate = gc.best_rate(lambda: calls.append(1), items=10, reps=3)
    assert len(calls) == 4 and rate["best"] >= rate["median"] > 0  # one warm-up, three timed
    out = "....s\n=== 3 passed, 2 skipped, 1 failed, 400 deselected in 9.1s ==="
    assert gc.pytest_counts(None, out) == {"passed": 3, "failed": 1, "errors": 0, "skipped": 2}
    table = "| batch | step | trainer w=0 |\n|---:|---:|---:|\n| 32 | 13 | 17 |\n"
    assert gc.parse_md_table("# title\n" + table) == [{"batch": "32", "step": "13", "trainer w=0": "17"}]
    assert gc.parse_steps(["2,parity", "5"]) == ["hog", "parity", "predict"]
    log = (
        "[..][pytorch_lightning.utilities.rank_zero][INFO] - Using bfloat16 Automatic Mixed Precision (AMP)\n"
        "[..][pytorch_lightning.utilities.rank_zero][INFO] - GPU available: True (cuda), used: True\n"
    )
    assert gc.gpu_train_problems(log) == []
    assert len(gc.gpu_train_problems("GPU available: False, used: False")) == 2


def test_a_failing_check_is_a_row_and_the_run_goes_on(gc, tmp_path):
    args = gc.build_parser().parse_args(["--dry-run", "--work", str(tmp_path / "w")])
    args.logs = tmp_path / "logs"
    args.logs.mkdir()
    run = gc.Run(args)

    def broken():
        raise RuntimeError("boom")

    row = run.guarded("9", "broken", 10, broken)
    assert row.status == "FAIL" and "RuntimeError: boom" in row.result
    assert run.guarded("9", "fine", 10, lambda: gc.Row("9", "fine", "ok")).status == "ok"
    proc = gc.run_cmd(
        [sys.executable, "-c", "import time; time.sleep(30)"], timeout=1, log=args.logs / "x.log"
    )
    assert proc.timed_out and "timed out after 1 s" in gc.proc_failure(proc, "sleep")


def test_hog_step_dry_run_on_the_cpu(gc, tmp_path):
    out = tmp_path / "report.md"
    argv = ["--dry-run", "--quick", "--steps", "hog", "--hog-cpu-frames", "2", "--out", str(out)]
    assert gc.main(argv) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    rows = report["rows"]
    assert rows[0]["check"] == "environment" and rows[0]["status"] == "ok"
    cpu = [r for r in rows if r["check"].startswith("HOG CPU")]
    gpu = [r for r in rows if r["check"].startswith("HOG GPU")]
    assert len(cpu) == 2 and all(r["status"] == "ok" and r["figures"]["fps"] > 0 for r in cpu)
    assert len(gpu) == 4 and all(r["status"] == "skipped" for r in gpu)
    assert all(r["note"] in ("skipped: no CUDA", "skipped: --dry-run") for r in gpu)
    assert {"step", "check", "status", "result", "figures", "note", "seconds"} <= set(rows[1])
    assert report["meta"]["counts"]["FAIL"] == 0
    assert "| 2 | HOG CPU (480x640 uint8, paper 8o/32px/1x1/sqrt) |" in out.read_text()
