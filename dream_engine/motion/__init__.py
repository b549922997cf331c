"""Moving dreams: a zoom into a still, or a clip dreamed frame by frame (see sequences.py)."""
