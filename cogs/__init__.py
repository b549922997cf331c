"""Discord-facing extensions, one per feature; no TensorFlow here."""
