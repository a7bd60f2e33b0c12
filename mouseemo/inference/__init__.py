"""Inference on new videos, as ``mouseemo predict`` runs it.

* :mod:`~mouseemo.inference.stream`: decoding on a background thread, a bounded number of chunks
  ahead of the computation;
* :mod:`~mouseemo.inference.scorers`: per-frame scores from a prototypes file or a trained
  checkpoint (frames prepared exactly as in training);
* :mod:`~mouseemo.inference.qc`: quality checks computed while the video streams;
* :mod:`~mouseemo.inference.rateable`, :mod:`~mouseemo.inference.rateable_model`: the per-frame
  ``rateable`` column (QC rules and a learned unrateable score), abstention, coverage curves;
* :mod:`~mouseemo.inference.inputs`: what VIDEO / INPUT arguments stand for (one input record);
* :mod:`~mouseemo.inference.scoring`: one scoring stream, shared by predict and correlates;
* :mod:`~mouseemo.inference.pipeline`: one video in, its CSV / JSON / plot / overlay / NWB out;
* :mod:`~mouseemo.inference.batch`: many videos, workers, progress and the final table;
* :mod:`~mouseemo.inference.prototypes`, :mod:`~mouseemo.inference.traces`,
  :mod:`~mouseemo.inference.embed`: prototypes from videos, face traces of a session, joint embeddings;
* :mod:`~mouseemo.inference.nwb`: the NWB export (optional ``pynwb``).
"""
