"""Serving side of the classifier: model cards, the on-disk registry and the
onnxruntime predictor. Imports neither torch nor scikit-learn, so the serving
image runs without the training dependencies.
"""
