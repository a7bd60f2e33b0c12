"""Shared fixtures.

Real data lives in ``../shared/data/real`` beside the checkout (or where ``MOUSEEMO_REAL_DATA``
points); tests that need it skip when it is absent, as on a user's fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# pytest-xdist runs the suite in several worker processes: share the cores between them instead of
# letting every worker's torch, OpenMP and the command-line runs it starts use all of them
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, _THREADS)


def _real_data_dir() -> Path | None:
    env = os.environ.get("MOUSEEMO_REAL_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data" / "real")
    for cand in candidates:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Folder with the small real files; skips the test when it is absent."""
    path = _real_data_dir()
    if path is None:
        pytest.skip("real data folder ../shared/data/real is absent")
    return path


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
