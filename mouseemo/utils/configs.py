"""Where the Hydra configs are, and composing them outside a Hydra app.

In order: ``MOUSEEMO_CONFIG_DIR`` if set; the configs packaged with an installed wheel
(``mouseemo/conf``, built from the repository's ``conf/`` by ``setup.py``); the top-level ``conf/``
of a source checkout (an editable install).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def model_options() -> list[str]:
    """Names of the ``model`` config group's options (``conf/model/*.yaml``)."""
    return sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def compose(config_name: str = "train", overrides: Sequence[str] = (), *, hydra_config: bool = False):
    """The config ``config_name`` with ``overrides`` as Hydra composes it, outside a Hydra app.

    With ``hydra_config`` the ``hydra`` node is kept and made the current Hydra config (so that
    ``${hydra:...}`` interpolations resolve, as in a run of ``train.py``) and mouseemo's resolvers are
    registered; any Hydra already initialized in this process is cleared first. Without it, an
    initialized Hydra (inside a ``train.py`` run) composes from its own search path.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    if hydra_config:
        from hydra.core.hydra_config import HydraConfig

        from mouseemo.utils.resolvers import register_resolvers

        register_resolvers()
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        HydraConfig().set_config(cfg)
        return cfg
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def compose_model(name: str):
    """The ``model`` group option ``conf/model/<name>.yaml`` as Hydra composes it (unresolved), detached
    from the composed tree: its interpolations resolve against the run it is put into.

    Raises:
        ConfigError: ``name`` is no model config.
    """
    from omegaconf import OmegaConf

    options = model_options()
    if name not in options:
        raise ConfigError(f"unknown model {name!r}: the model configs are {options}")
    composed = compose("train", [f"model={name}"])
    return OmegaConf.create(OmegaConf.to_container(composed.model, resolve=False))
