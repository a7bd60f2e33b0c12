"""What machine a measurement ran on, for the header of a results table."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what :mod:`platform` says)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_name() -> str | None:
    """The first CUDA device's name, or ``None`` (no torch, no CUDA)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine() -> str:
    """``"<CPU model>, <n> cores[, GPU <name>]"``."""
    gpu = gpu_name()
    return f"{cpu_model()}, {os.cpu_count()} cores" + (f", GPU {gpu}" if gpu else ", no GPU")


def results_header(command: str, seed: object = None) -> str:
    """The first line of a results fragment: ``_`command` · seed S · <machine> · <date>_``."""
    parts = [f"`{command}`", f"seed {seed if seed is not None else 'n/a'}", machine()]
    parts.append(datetime.date.today().isoformat())
    return "_" + " · ".join(parts) + "_"
