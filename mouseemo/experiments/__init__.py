"""Experiments of several training runs: the HOG-vs-learned benchmark (:mod:`.benchmark`, its tables
and plots in :mod:`.report`) and the baseline beside a training run (:mod:`.baseline`).

They are given the single-run function (:func:`mouseemo.tasks.train`) by
:func:`mouseemo.tasks.run_task`, the entry point of ``train.py`` and ``evaluate.py``.
"""
