"""Offline training of the Transformer regime classifier (the only package importing torch).

Read in this order: ``config`` (typed settings and presets), ``labels`` (KMeans
targets), ``windows`` and ``splits`` (the dataset), ``model`` (the network),
``trainer`` (the loop), ``export`` (ONNX + parity), ``pipeline`` (a training run
that writes a model version), then ``baselines``, ``walkforward``, ``strategy``,
``reproduction`` and ``evaluation`` (the ``deepregime evaluate`` report).
"""
