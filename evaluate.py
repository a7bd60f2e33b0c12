"""Evaluate a model: ``python evaluate.py ckpt_path=... [hydra overrides]`` (same as ``mouseemo evaluate``)."""

import sys

from mouseemo.hydra_entry import run

if __name__ == "__main__":
    sys.exit(run("evaluate", sys.argv[1:]))
