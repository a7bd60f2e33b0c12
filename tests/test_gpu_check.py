"""benchmarks/gpu_check.py: its table, the rows it derives from the gpu tests' results, and a CPU
dry run of the HOG speed step (timed by benchmarks/hog.py's functions)."""

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
    with pytest.raises(ValueError):
        gc.Row("1", "x", "passed")


def test_junit_results_become_counts_and_parity_rows(gc, tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite tests="5">'
        '<testcase classname="tests.test_hog" name="test_gpu_torch_equals_cpu[8-32-1-L2-Hys]"/>'
        '<testcase classname="tests.test_real_faces" name="test_gpu_real_frames_equal_cpu[8-32-1-True-torch]">'
        '<failure message="assert"/></testcase>'
        '<testcase classname="tests.test_hog" name="test_gpu_fused_equals_cpu[x]">'
        '<skipped message="cupy sees no device"/></testcase>'
        '<testcase classname="tests.test_real_faces" name="test_gpu_real_frames_equal_cpu[8-32-1-True-cupy]">'
        '<skipped message="cupy sees no device"/></testcase>'
        '<testcase classname="tests.test_video" name="test_gpu_decode"/>'
        "</testsuite></testsuites>"
    )
    assert gc.pytest_counts(junit) == {"passed": 2, "failed": 1, "skipped": 2}
    cases = gc.junit_cases(junit)
    torch_row, cupy_row = gc.parity_row("torch", cases), gc.parity_row("cupy", cases)
    assert (
        torch_row.status == "FAIL" and "test_real_faces::test_gpu_real_frames_equal_cpu" in torch_row.result
    )
    assert cupy_row.status == "skipped" and "cupy sees no device" in cupy_row.status_text
    passing = [c for c in cases if "real_frames" not in c[1]]
    assert gc.parity_row("torch", passing).status == "ok"
    assert gc.parity_row("torch", []).status == "FAIL"  # the tests it relies on are gone


def test_steps_and_fragments(gc):
    assert gc.parse_steps(["2,parity", "5"]) == ["hog", "parity", "predict"]
    with pytest.raises(SystemExit):
        gc.parse_steps(["7"])
    assert gc.parse_steps(["6"]) == ["pipeline"]
    table = "| batch | step | trainer w=0 |\n|---:|---:|---:|\n| 32 | 13 | 17 |\n"
    assert gc._harness.parse_markdown_table("_`cmd`_\n\n" + table) == [
        {"batch": "32", "step": "13", "trainer w=0": "17"}
    ]
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
    assert proc.timed_out and "timed out after 1 s" in proc.failure("sleep")


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


def test_pipeline_step_dry_run_on_the_cpu(gc, tmp_path):
    """Step 6 runs benchmarks/gpu_pipeline.py's chains on the CPU (decode -> HOG / CNN, OpenCV decoder)
    and skips the GPU row."""
    out = tmp_path / "report.md"
    assert (
        gc.main(
            ["--dry-run", "--quick", "--steps", "pipeline", "--out", str(out), "--work", str(tmp_path / "w")]
        )
        == 0
    )
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    six = [r for r in rows if r["step"] == "6"]
    chains = [r["check"] for r in six if r["status"] == "ok"]
    assert chains == ["decode on cpu", "decode -> HOG on cpu", "decode -> CNN (motion_cnn, 72x96) on cpu"], (
        six
    )
    assert all(r["figures"]["fps"] > 0 for r in six if r["status"] == "ok")
    assert all("decoder opencv" in r["result"] for r in six if r["status"] == "ok")
    assert [r["status"] for r in six if r["status"] != "ok"] == ["skipped"]
