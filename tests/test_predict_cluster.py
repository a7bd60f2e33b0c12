"""`mouseemo predict` over many jobs: the shard split, jobs through submitit's local executor, the
merged summary, and a job killed mid-video then resumed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from mouseemo.cli import main
from mouseemo.commands import predict_cluster
from mouseemo.errors import ConfigError
from mouseemo.inference.batch import Result
from mouseemo.inference.inputs import InputFailure, VideoInput, resolve_inputs
from mouseemo.inference.pipeline import PredictOptions
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.inference.shards import merge_summaries, parse_shard, shard_entries, split_shards, write_record
from tests.helpers import label_frames, write_session, write_video

SIZE = (64, 96)


def run_cli(*args) -> int:
    return main(["predict", *[str(a) for a in args]])


def local_jobs(inputs, protos, out, jobs: int, *extra) -> list:
    """Arguments of `mouseemo predict` over ``jobs`` local jobs."""
    return [inputs, "--prototypes", protos, "--out", out, "--executor", "local", "--jobs", str(jobs), *extra]


def outputs(folder: Path) -> dict[str, bytes]:
    """The visible files of an output folder (not the hidden records and logs), by name."""
    return {
        p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Prototypes and four short videos of different lengths (so of different sizes)."""
    root = tmp_path_factory.mktemp("cluster")
    session = write_session(root / "data", animal="m01", num_frames=120, size=SIZE, seed=1)
    protos = root / "protos.npz"
    build_from_videos(resolve_inputs([str(session)], None, True), hog={"pixels_per_cell": 16}, k=5).save(
        protos
    )
    videos = root / "videos"
    videos.mkdir()
    for k, n in enumerate((60, 90, 40, 75)):
        write_video(videos / f"v{k}.avi", label_frames(np.arange(n) % 7, SIZE, seed=k), 20.0, "MJPG")
    return root, protos, videos


# -- the split -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 7, 12])
def test_split_is_disjoint_complete_and_balanced(n):
    rng = np.random.default_rng(n)
    sizes = [int(s) for s in rng.integers(1, 1000, size=10)]
    videos = [f"/data/v{i:02d}.mp4" for i in range(10)]
    shards = split_shards(videos, n, sizes)
    assert len(shards) == n
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(10))  # every video once
    loads = [sum(sizes[i] for i in s) for s in shards]
    if n <= 10:
        assert max(loads) - min(loads) <= max(sizes)  # greedy by size: within one video of even
    # the order of the inputs does not change which video goes where
    perm = rng.permutation(10)
    again = split_shards([videos[i] for i in perm], n, [sizes[i] for i in perm])
    as_paths = lambda sh, vs: sorted(sorted(vs[i] for i in s) for s in sh)  # noqa: E731
    assert as_paths(again, [videos[i] for i in perm]) == as_paths(shards, videos)
    assert split_shards(videos, n, sizes) == shards


def test_split_balances_sizes_not_counts():
    # one huge video and four small ones: the huge one alone in its shard
    assert split_shards(["big", "a", "b", "c", "d"], 2, [100, 1, 1, 1, 1]) == [[0], [1, 2, 3, 4]]


def test_shard_entries_cover_inputs_and_failures_go_to_shard_zero(tmp_path):
    entries = [VideoInput(tmp_path / f"v{i}.avi", None, f"v{i}") for i in range(5)]
    entries.insert(2, InputFailure("missing.avi", "video not found"))
    parts = [shard_entries(entries, k, 3) for k in range(3)]
    assert sorted(e.stem for p in parts for e in p if isinstance(e, VideoInput)) == [
        f"v{i}" for i in range(5)
    ]
    assert [sum(isinstance(e, InputFailure) for e in p) for p in parts] == [1, 0, 0]


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1/0", "a/b", "1", "1/2/3", ""])
def test_bad_shard_is_one_error(text):
    with pytest.raises(ConfigError, match="K/N with 0 <= K < N"):
        parse_shard(text)
    assert parse_shard(" 2 / 3 ") == (2, 3)


def test_bad_many_job_flags_are_one_line(world, tmp_path, capsys):
    root, protos, videos = world
    cases = [
        (["--shard", "4/4"], "--shard must be K/N"),
        (["--shard", "0/2", "--executor", "local"], "do not go together"),
        (["--jobs", "2"], "--jobs needs --executor"),
        (["--executor", "local", "--partition", "gpu"], "--partition applies to --executor slurm"),
        (["--executor", "slurm"], "--executor slurm needs --jobs"),
        (["--executor", "local", "--jobs", "0"], "--jobs must be >= 1"),
        (["--executor", "slurm", "--jobs", "2", "--slurm-extra", "qos"], "KEY=VALUE"),
    ]
    for flags, message in cases:
        code = run_cli(videos, "--prototypes", protos, "--out", tmp_path / "o", "--quiet", *flags)
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (flags, err)
        assert not (tmp_path / "o").exists()


# -- shards and executor ----------------------------------------------------------------------------
def test_shards_then_merge_equal_one_run(world, tmp_path, capsys):
    root, protos, videos = world
    one, many = tmp_path / "one", tmp_path / "many"
    assert run_cli(videos, "--prototypes", protos, "--out", one, "--quiet", "--no-plot") == 0
    for k in range(3):
        assert (
            run_cli(
                videos, "--prototypes", protos, "--out", many, "--quiet", "--no-plot", "--shard", f"{k}/3"
            )
            == 0
        )
    assert not (many / "summary.csv").exists()  # merging is its own step
    assert run_cli(videos, "--prototypes", protos, "--out", many, "--no-plot", "--merge-only") == 0
    assert "4 done, 0 failed, 0 missing" in capsys.readouterr().out
    got, want = outputs(many), outputs(one)
    assert sorted(got) == sorted([*want, "summary.csv", "summary.json"])
    assert all(got[n] == want[n] for n in want if n.endswith(".csv"))
    summary = json.loads(got["summary.json"])
    assert summary["counts"] == {"done": 4, "failed": 0, "missing": 0}
    assert [v["stem"] for v in summary["videos"]] == ["v0", "v1", "v2", "v3"]


def test_local_executor_end_to_end_and_rerun_does_nothing(world, tmp_path, capsys):
    root, protos, videos = world
    one, many = tmp_path / "one", tmp_path / "many"
    assert run_cli(videos, "--prototypes", protos, "--out", one, "--quiet") == 0
    args = local_jobs(videos, protos, many, 2, "--cpus-per-task", "1")
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert "submitted 2 local job(s) for 4 video(s)" in out and "4 done, 0 failed, 0 missing" in out
    got, want = outputs(many), outputs(one)
    assert all(got[n] == want[n] for n in want if n.endswith(".csv"))
    assert sorted(n for n in got if n.endswith(".json")) == sorted(
        [*(n for n in want if n.endswith(".json")), "summary.json"]
    )
    assert (many / ".submitit").is_dir() and not any(Path.cwd().glob("[0-9]*_0_log.out"))
    before = {n: (many / n).stat().st_mtime_ns for n in got if not n.startswith("summary.")}
    assert run_cli(*args) == 0  # all finished: no job is submitted, no output is rewritten
    assert "submitted" not in capsys.readouterr().out
    assert {n: (many / n).stat().st_mtime_ns for n in before} == before


def test_merge_lists_failed_and_missing_videos(world, tmp_path):
    root, protos, videos = world
    out = tmp_path / "out"
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video")
    assert (
        run_cli(
            videos / "v0.avi",
            broken,
            tmp_path / "nothing.avi",
            "--prototypes",
            protos,
            "--out",
            out,
            "--quiet",
            "--shard",
            "0/1",
        )
        == 2
    )
    entries = [
        VideoInput(videos / "v0.avi", None, "v0"),
        VideoInput(broken, None, "broken"),
        VideoInput(videos / "v1.avi", None, "v1"),  # its job died
        VideoInput(videos / "v2.avi", None, "v2"),  # never ran
        InputFailure(str(tmp_path / "nothing.avi"), "video not found: nothing.avi"),
    ]
    rows = merge_summaries(
        entries, out, PredictOptions(), reasons={"v1": "its job 123 ended without finishing"}
    )
    assert [(r["stem"], r["status"]) for r in rows] == [
        ("v0", "done"), ("broken", "failed"), ("v1", "missing"), ("v2", "missing"), ("", "failed"),
    ]  # fmt: skip
    assert "broken.avi" in rows[1]["message"] and rows[2]["message"].startswith("its job 123")
    assert rows[3]["message"] == "no job has finished it yet" and "not found" in rows[4]["message"]
    text = (out / "summary.csv").read_text().splitlines()
    assert text[0].startswith("stem,video,status,frames,fps,duration_s,truncated,warnings,fraction_")
    assert text[1].startswith(f"v0,{videos / 'v0.avi'},done,60,") and ",missing," in text[3]
    # a later record wins: the broken video, once fixed and done, is done
    write_record(
        out, "later", [Result(name=str(broken), stem="broken", status="failed", message="interrupted")]
    )
    assert merge_summaries(entries[1:2], out, PredictOptions())[0]["status"] == "missing"


def test_merge_refuses_foreign_summary(world, tmp_path, capsys):
    root, protos, videos = world
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("my notes\n")
    assert run_cli(videos, "--prototypes", protos, "--out", out, "--merge-only") == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (out / "summary.csv").read_text() == "my notes\n"


def wait_until_writing(out: Path, stem: str, old: frozenset = frozenset(), timeout: float = 120) -> None:
    """Return once a temporary file of ``stem``'s outputs (not one of ``old``) holds data: the video
    is part-written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in out.iterdir() if out.is_dir() else []:
            try:
                if p.name.startswith(f".{stem}.mouseemo-") and p.name not in old and p.stat().st_size > 0:
                    return
            except FileNotFoundError:  # renamed meanwhile
                pass
        time.sleep(0.01)
    pytest.fail(f"{stem} never started")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


@pytest.mark.slow  # two rounds of job processes (each imports torch)
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the job's process through /proc")
def test_killed_job_leaves_complete_outputs_and_rerun_finishes(world, tmp_path, monkeypatch):
    """SIGKILL a job's process while it writes a video; only complete outputs remain, the merge lists
    the rest as missing, and the same command again does only those, ending byte-identical."""
    import submitit

    root, protos, videos = world
    long = tmp_path / "long"
    long.mkdir()
    for k, n in enumerate((30, 1500, 30)):
        write_video(long / f"w{k}.avi", label_frames(np.arange(n) % 7, SIZE, seed=k), 20.0, "MJPG")
    one, out = tmp_path / "one", tmp_path / "out"
    assert run_cli(long, "--prototypes", protos, "--out", one, "--quiet") == 0
    args = local_jobs(long, protos, out, 1, "--batch-size", "8", "--quiet")

    submit = submitit.LocalExecutor.submit_array

    def submit_and_kill(self, fns):
        jobs = submit(self, fns)
        controller = int(jobs[0].job_id)
        wait_until_writing(out, "w1")  # kill once the long video is part-written
        for pid in _children(controller):
            os.kill(pid, signal.SIGKILL)
        return jobs

    monkeypatch.setattr(submitit.LocalExecutor, "submit_array", submit_and_kill)
    assert run_cli(*args) == 2
    summary = json.loads((out / "summary.json").read_text())
    status = {v["stem"]: v for v in summary["videos"]}
    assert status["w1"]["status"] == "missing" and "ended without finishing" in status["w1"]["message"]
    visible = outputs(out)
    for stem in ("w0", "w1", "w2"):  # a video's outputs are all there, or none is
        have = {n for n in visible if n.startswith(stem + ".")}
        assert have in (set(), {f"{stem}.csv", f"{stem}.json", f"{stem}.png"}), have
        if have:
            assert visible[f"{stem}.csv"] == (one / f"{stem}.csv").read_bytes()
    assert "w1.json" not in visible
    monkeypatch.setattr(submitit.LocalExecutor, "submit_array", submit)

    # Ctrl-C on the submitting command while its job writes the long video: the job is cancelled
    wait = predict_cluster._wait

    def interrupted(jobs, quiet, poll_s):
        wait_until_writing(out, "w1", old=left)  # not the killed job's temporary files
        raise KeyboardInterrupt

    left = frozenset(p.name for p in out.iterdir())

    monkeypatch.setattr(predict_cluster, "_wait", interrupted)
    assert run_cli(*args) == 130
    (controller,) = json.loads((out / ".submitit" / "running.json").read_text())["jobs"]
    with pytest.raises(ProcessLookupError):  # the job was stopped, not left running
        os.kill(int(controller), 0)
    assert "w1.json" not in outputs(out) and "w1.csv" not in outputs(out)
    monkeypatch.setattr(predict_cluster, "_wait", wait)

    assert run_cli(*args) == 0
    got, want = outputs(out), outputs(one)
    assert all(got[n] == want[n] for n in want if n.endswith(".csv"))
    assert not [
        p.name for p in out.iterdir() if ".tmp" in p.name
    ]  # the killed job's temporary files are gone
    assert json.loads((out / "summary.json").read_text())["counts"] == {"done": 3, "failed": 0, "missing": 0}
