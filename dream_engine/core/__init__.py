"""The DeepDream algorithm and its vocabulary: parameters, presets, models, classes, the
engine (octave gradient ascent), tiling, batch-norm folding and results.

The lowest layer: it imports nothing of the package but `errors`.
"""
