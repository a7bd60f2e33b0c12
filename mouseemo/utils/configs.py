"""Where the Hydra configs are.

In order: ``MOUSEEMO_CONFIG_DIR`` if set; the configs packaged with an installed wheel
(``mouseemo/conf``, built from the repository's ``conf/`` by ``setup.py``); the top-level ``conf/``
of a source checkout (an editable install).
"""

from __future__ import annotations

import os
from pathlib import Path

from mouseemo.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """Absolute path of the Hydra config folder (the one holding ``train.yaml``)."""
    env = os.environ.get("MOUSEEMO_CONFIG_DIR")
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "train.yaml").is_file():
            raise ConfigError(f"MOUSEEMO_CONFIG_DIR={env} holds no train.yaml: point it at a conf/ folder")
        return path
    for path in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (path / "train.yaml").is_file():
            return path
    raise ConfigError(
        f"Hydra configs not found (looked in {_PACKAGE / 'conf'} and {_PACKAGE.parent / 'conf'}); "
        "reinstall mouseemo with `pip install .` or set MOUSEEMO_CONFIG_DIR to a conf/ folder"
    )
