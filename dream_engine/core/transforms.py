"""Transformation robustness (lucid; the Distill "Feature Visualization" article): each
step the network sees the image slightly scaled and rotated about its centre, at random.

Patterns that only work at one exact pixel alignment (adversarial high-frequency noise)
then stop paying, and the ones that grow are what the network sees under small changes.
The image itself is never resampled: only the network's view is, and the gradient is
carried back through the view (see `GradientAscent._step`), so no blur accumulates over
the steps. Seeded by the step's seed, like the jitter roll: `seed` reproduces a dream.
"""

from __future__ import annotations

import math

import tensorflow as tf

#: Added to the step's seed so the view's draws are not the roll's.
VIEW_SEED_OFFSET = 50_000


def random_view(
    image: tf.Tensor, scale_jitter: tf.Tensor, rotate_jitter: tf.Tensor, seed: tf.Tensor
) -> tf.Tensor:
    """`image` ([H, W, 3]) scaled by a factor in [1 - scale_jitter, 1 + scale_jitter] and
    rotated by up to `rotate_jitter` degrees either way, about its centre, at its own size
    (the edges reflected, so no black corners enter the network's view)."""
    draws = tf.random.stateless_uniform(
        [2], seed=seed + tf.constant([0, VIEW_SEED_OFFSET]), minval=-1.0, maxval=1.0
    )
    scale = 1.0 + scale_jitter * draws[0]
    angle = rotate_jitter * draws[1] * (math.pi / 180.0)
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # The transform maps each output pixel to where it is read from in the input.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    flat = tf.stack(
        [
            cos, -sin, centre_x - cos * centre_x + sin * centre_y,
            sin, cos, centre_y - sin * centre_x - cos * centre_y,
            0.0, 0.0,
        ]
    )  # fmt: skip
    viewed = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=flat[tf.newaxis],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return viewed[0]
