"""Packaging of what ``pyproject.toml`` cannot list on its own: the Hydra configs.

The configs live in the repository's top-level ``conf/`` folder (where Hydra users expect them).
They are packaged as ``mouseemo/conf`` so that a regular ``pip install .`` (a wheel) carries them;
an editable install reads ``conf/`` in place. ``conf/local/`` (machine-specific, not in git) is
never packaged.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
CONF = HERE / "conf"


def _conf_packages() -> list[str]:
    folders = sorted({p.parent for p in CONF.rglob("*.yaml")} | {CONF})
    names = []
    for folder in folders:
        parts = folder.relative_to(CONF).parts
        if parts[:1] == ("local",) or "__pycache__" in parts:
            continue
        names.append(".".join(("mouseemo", "conf", *parts)))
    return names


CONF_PACKAGES = _conf_packages()

setup(
    packages=find_packages(include=["mouseemo", "mouseemo.*"]) + CONF_PACKAGES,
    package_dir={"mouseemo.conf": "conf"},
    package_data={name: ["*.yaml"] for name in CONF_PACKAGES},
)
