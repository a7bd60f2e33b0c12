"""A regular (non-editable) install carries the Hydra configs, so `mouseemo train` works from a wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(dest: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dest),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dest.glob("mouseemo-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (REPO / "setup.py").is_file():
        pytest.skip("not a source checkout")
    return _build_wheel(tmp_path_factory.mktemp("dist"))


def test_wheel_holds_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "mouseemo/conf/" + str(p.relative_to(REPO / "conf"))
        for p in (REPO / "conf").rglob("*.yaml")
        if p.relative_to(REPO / "conf").parts[0] != "local"
    }
    assert "mouseemo/conf/train.yaml" in expected
    assert expected <= names, sorted(expected - names)[:5]
    assert not [n for n in names if n.startswith("mouseemo/conf/local/")]


@pytest.mark.slow
def test_train_runs_from_a_wheel_install(wheel, tmp_path):
    venv = tmp_path / "venv"
    # the installed dependencies (torch, ...) are reused; mouseemo itself comes from the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MOUSEEMO_CONFIG_DIR", "MOUSEEMO_ROOT")
    }
    env.update(WANDB_MODE="offline", MPLBACKEND="Agg")
    where = subprocess.run(
        [str(py), "-c", "import mouseemo, mouseemo.utils.configs as c; print(mouseemo.__file__); print(c.config_dir())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    module_file, conf = where.stdout.split()
    assert str(venv) in module_file and Path(conf) == Path(module_file).parent / "conf"
    run = subprocess.run(
        [str(venv / "bin" / "mouseemo"), "train", "debug=fast", "baseline=null",
         "data.synthesize.num_mice=3", "data.synthesize.minutes=1.0"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (work / "data" / "synthetic").is_dir()
