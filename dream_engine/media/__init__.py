"""Pictures in and out: decoding and checking uploads, encoding to fit a size limit,
labelled grids, animations. Knows the core's vocabulary, never the engine's TensorFlow."""
