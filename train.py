"""Train a model: ``python train.py [hydra overrides]`` (same as ``mouseemo train``)."""

import sys

from mouseemo.hydra_entry import run

if __name__ == "__main__":
    sys.exit(run("train", sys.argv[1:]))
