"""Hydra entry points shared by ``train.py``, ``evaluate.py``, ``mouseemo train/evaluate`` and
``python -m mouseemo train``.

The configs are found by :func:`mouseemo.utils.configs.config_dir`: the repository's top-level
``conf/`` folder, the copy packaged with a wheel, or ``MOUSEEMO_CONFIG_DIR``. What runs is decided
by :func:`mouseemo.tasks.run_task` (one model, a model and its baseline, or the benchmark).
Errors caused by the user's input end as one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mouseemo.errors import MouseemoError, run_guarded
from mouseemo.tasks import run_task
from mouseemo.utils.configs import config_dir
from mouseemo.utils.resolvers import register_resolvers


def run(task: str, overrides: Sequence[str]) -> int:
    """Run ``task`` (``train`` or ``evaluate``) with Hydra command-line ``overrides``."""
    register_resolvers()

    try:
        conf = str(config_dir())
    except MouseemoError as err:
        print(f"mouseemo: error: {err}", file=sys.stderr)
        return 2

    result: dict[str, int] = {"code": 0}

    @hydra.main(version_base="1.3", config_path=conf, config_name=task)
    def _main(cfg: DictConfig) -> float | None:
        metrics: dict = {}

        def call() -> int:
            metrics.update(run_task(task, cfg) or {})
            return 0

        code = run_guarded(call)
        if code:
            result["code"] = code
            # Hydra multirun keeps going over the other jobs; single runs stop here.
            return None
        opt = cfg.get("optimized_metric")
        return float(metrics[opt]) if opt and opt in metrics else None

    import __main__

    saved, saved_spec = sys.argv, getattr(__main__, "__spec__", None)
    # Lightning's DDP launcher starts the other processes by re-running `sys.argv` (or
    # `python -m <__main__.__spec__>`) with the same overrides: point it at the task's script, so
    # that `mouseemo train`, `python -m mouseemo train` and `python train.py` from any folder work.
    script = Path(conf).parent / f"{task}.py"
    sys.argv = [str(script) if script.is_file() else f"{task}.py", *overrides]
    if script.is_file():
        __main__.__spec__ = None
    try:
        _main()
    except SystemExit as err:  # argparse-style exits from Hydra itself (bad override syntax)
        return int(err.code or 0)
    finally:
        sys.argv = saved
        __main__.__spec__ = saved_spec
    return result["code"]
