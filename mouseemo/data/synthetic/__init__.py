"""The synthetic world: deterministic sessions for developing, testing and demonstrating every stage.

A procedurally rendered face (:mod:`.face`) whose action units follow latent emotion intensities driven
by a stimulus schedule (:mod:`.dynamics`), a two-photon population tuned to those intensities and to
face movements (:mod:`.neurons`), written in the same session-folder format as real recordings
(:mod:`.writer`), with the ground truth beside it in ``truth/``.

Example:
    >>> from mouseemo.data.synthetic import generate_dataset
    >>> sessions = generate_dataset("data/synth", num_mice=2, minutes=3.0, seed=0)  # doctest: +SKIP
"""

from mouseemo.data.synthetic.writer import SynthConfig, generate_dataset, generate_session

__all__ = ["SynthConfig", "generate_dataset", "generate_session"]
