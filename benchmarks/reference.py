"""The baseline: DeepDream written the plain keras.io `deep_dream` way.

The engine's speed claims mean something only against the obvious way to write
the algorithm, so this is that way, kept deliberately naive where the keras.io
example is naive and identical where the maths is concerned:

- one `tf.function` gradient step *without* an input signature, so every new
  image (and octave) size traces a new graph;
- called from Python once per step, with the `max_loss` check on the host,
  which waits for the step to finish (`float(loss)`) before the next one starts;
- octaves smallest first with detail re-injection, as in the example.

What is the same as the engine, so the comparison is fair: the backbone
(`load_backbone`), the feature extractor for the same layers, the [-1, 1] input
range, the loss `sum w * mean(square(act[:, 2:-2, 2:-2, :]))`, the gradient
normalisation, and the octave shapes (rounded, those under the model's minimum
side dropped). Traces are counted the way the engine counts them: a Python
counter bumped inside the traced function, so it moves once per trace.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from PIL import Image

from dream_engine.core.models import get_model_spec, load_backbone
from dream_engine.core.params import DreamParams


class ReferenceDreamer:
    """keras.io's deep_dream, wrapped in a class only to hold the model and a trace counter."""

    def __init__(self, model: str = "inceptionv3", weights: str = "random", seed: int = 0) -> None:
        self.spec = get_model_spec(model)
        self.backbone = load_backbone(model, weights, seed)
        self.trace_count = 0
        self.steps_taken = 0  # steps really run (a max_loss stop ends an octave early)
        self._extractor = None
        self._layer_weights: dict[str, float] = {}
        # No input_signature: a new shape (or a new Python float) means a new trace.
        self.gradient_ascent_step = tf.function(self._gradient_ascent_step)

    def set_layers(self, layers: Mapping[str, float]) -> None:
        """Build the feature extractor for `layers` (the example builds it once, globally)."""
        import keras

        active = {name: weight for name, weight in layers.items() if weight > 0}
        if active != self._layer_weights:
            outputs = {name: self.backbone.get_layer(name).output for name in active}
            self._extractor = keras.Model(inputs=self.backbone.inputs, outputs=outputs)
            self._layer_weights = active
            self.gradient_ascent_step = tf.function(self._gradient_ascent_step)

    def compute_loss(self, input_image: tf.Tensor) -> tf.Tensor:
        """The weighted mean squared activation of each layer, border pixels ignored."""
        if self.spec.input_from_unit is not None:
            input_image = self.spec.input_from_unit(input_image)
        features = self._extractor(input_image, training=False)
        loss = tf.zeros(shape=())
        for name, coeff in self._layer_weights.items():
            activation = features[name]
            loss += coeff * tf.reduce_mean(tf.square(activation[:, 2:-2, 2:-2, :]))
        return loss

    def _gradient_ascent_step(
        self, img: tf.Tensor, learning_rate: float
    ) -> tuple[tf.Tensor, tf.Tensor]:
        self.trace_count += 1  # Python side effect: runs once per trace
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss = self.compute_loss(img)
        grads = tape.gradient(loss, img)
        grads /= tf.maximum(tf.reduce_mean(tf.abs(grads)), 1e-6)
        img += learning_rate * grads
        return loss, img

    def gradient_ascent_loop(
        self, img: tf.Tensor, iterations: int, learning_rate: float, max_loss: float | None
    ) -> tuple[tf.Tensor, list[float]]:
        losses: list[float] = []
        for _ in range(iterations):
            loss, img = self.gradient_ascent_step(img, learning_rate)
            losses.append(float(loss))  # host sync every step, as in the example
            self.steps_taken += 1
            if max_loss is not None and losses[-1] > max_loss:
                break
        return img, losses

    def dream(self, image: Image.Image, params: DreamParams) -> Image.Image:
        """The example's main loop: octaves smallest first, detail re-injected after each."""
        self.set_layers(params.layers)
        original_img = preprocess_image(image)
        original_shape = original_img.shape[1:3]
        successive_shapes = [
            shape
            for shape in (
                tuple(round(dim / params.octave_scale**i) for dim in original_shape)
                for i in range(params.octaves)
            )
            if min(shape) >= self.spec.min_side
        ][::-1]
        shrunk_original_img = tf.image.resize(original_img, successive_shapes[0])

        img = tf.identity(original_img)
        for shape in successive_shapes:
            img = tf.image.resize(img, shape)
            img, _ = self.gradient_ascent_loop(
                img,
                iterations=params.iterations,
                learning_rate=params.step,
                max_loss=params.max_loss,
            )
            upscaled_shrunk_original_img = tf.image.resize(shrunk_original_img, shape)
            same_size_original = tf.image.resize(original_img, shape)
            lost_detail = same_size_original - upscaled_shrunk_original_img
            img += lost_detail
            shrunk_original_img = tf.image.resize(original_img, shape)
        return deprocess_image(img.numpy())


def preprocess_image(image: Image.Image) -> tf.Tensor:
    """RGB pixels to a [1, H, W, 3] batch in [-1, 1], InceptionV3's range (the engine's too)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return tf.convert_to_tensor(pixels[np.newaxis] / 127.5 - 1.0)


def deprocess_image(x: np.ndarray) -> Image.Image:
    """[-1, 1] back to 8-bit RGB."""
    pixels = np.clip((x[0] + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGB")
