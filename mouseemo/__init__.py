"""mouseemo: emotion states from videos of a head-fixed mouse's face, and their neuronal correlates.

Reimplements the HOG / prototypical-expression method of Dolensek et al. (Science 2020) exactly and
fast, and adds learned expression classifiers and a face <-> two-photon joint encoder.
"""

from mouseemo.constants import EMOTIONS
from mouseemo.errors import MouseemoError

__version__ = "0.1.0"

__all__ = ["EMOTIONS", "MouseemoError", "__version__"]
