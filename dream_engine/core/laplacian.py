"""Laplacian-pyramid normalisation of a gradient (the original DeepDream notebook's
`lap_normalize`, neural-dream's `-lap_scale`).

A raw image gradient is dominated by its finest frequencies: normalised as one
piece, a step mostly paints pixel noise. Split into a Laplacian pyramid, each band
scaled to unit RMS and merged back, every scale gets its share of the step, so
larger, smoother structures grow in the same number of steps.

Everything is shape-agnostic graph code (`tf.shape`, strided convolutions whose
transposes are told the size to come back to), so a compiled step with it takes
any image size without a retrace; the number of levels is fixed per compiled step.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32)
#: The 5x5 binomial blur, one per colour channel ([h, w, in, out] for `conv2d`).
_BLUR = np.outer(_BINOMIAL, _BINOMIAL) / np.sum(_BINOMIAL) ** 2
_KERNEL = (_BLUR[:, :, None, None] * np.eye(3, dtype=np.float32)[None, None]).astype(np.float32)


def _split(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(the image blurred at half size, what that loses: the top band)."""
    low = tf.nn.conv2d(image, _KERNEL, strides=2, padding="SAME")
    back = tf.nn.conv2d_transpose(low, _KERNEL * 4, tf.shape(image), strides=2, padding="SAME")
    return low, image - back


def _merge(low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """`_split` undone: the coarse image brought back to size, its band added."""
    size = tf.shape(high)
    return tf.nn.conv2d_transpose(low, _KERNEL * 4, size, strides=2, padding="SAME") + high


def _unit_rms(band: tf.Tensor) -> tf.Tensor:
    return band / tf.maximum(tf.sqrt(tf.reduce_mean(tf.square(band))), 1e-10)


def laplacian_normalize(gradient: tf.Tensor, levels: int) -> tf.Tensor:
    """`gradient` ([H, W, 3]) with each of `levels` pyramid bands and the coarse rest
    scaled to unit RMS; `levels=0` returns it unchanged. An image too small for every
    halving simply gets 1-pixel bands at the bottom (SAME padding), never an error."""
    if levels <= 0:
        return gradient
    image = gradient[tf.newaxis]
    bands = []
    for _ in range(levels):
        image, high = _split(image)
        bands.append(high)
    merged = _unit_rms(image)
    for high in reversed(bands):
        merged = _merge(merged, _unit_rms(high))
    return merged[0]

