"""Batch normalisation folded into the convolution before it: the same network, fewer passes.

A dream never trains, so every `BatchNormalization` is a fixed per-channel affine
map, `y = x * scale + shift`. Keras still runs it as its own layer: a multiply
and an add over the whole activation on the way forward and again on the way
back, and under mixed precision two casts more (it upcasts to float32 and back,
against overflow). Where a convolution feeds only that layer, the scale can go
into the convolution's kernel and the shift into its bias: one pass instead of
three, and TensorFlow then fuses conv + bias + activation. In float32 the output
is the same up to rounding; with bfloat16 the dream step is about 1.2x faster on
a CPU (the benchmark's `precision` case).

The folded layer keeps its name and becomes a pass-through, so a dream layer
that *is* a batch normalisation (MobileNetV2's `block_N_project_BN`) still has
its output, now straight from the folded convolution.

Under mixed precision the copy also stores its weights in the dtype they compute in
(`store_as`): Keras's mixed policies keep float32 variables and cast every kernel to
bfloat16 or float16 on every call, which was 13% of a bfloat16 step at 256x256 on
InceptionV3. The folded kernel is computed in float32 and rounded once, the same
rounding the per-call cast made.
"""

from __future__ import annotations

from typing import Any

import keras  # imported by the engine only, which has TensorFlow loaded anyway
import numpy as np


def fold_batch_norm(model: keras.Model, store_as: str | None = None) -> keras.Model:
    """A copy of `model` with each convolution + batch normalisation pair folded into one.

    Only pairs where the convolution is linear (no activation of its own), feeds
    nothing else, and the normalisation is over channels (the last axis) are
    folded; everything else is copied as it is. `model` is left untouched.
    `store_as` ("bfloat16", "float16"): every layer but the input keeps its weights,
    and computes, in that dtype.
    """
    folds = _foldable_pairs(model)
    folded_norms = {norm.name for norm in folds.values()}

    def clone(layer: keras.Layer) -> keras.Layer:
        dtype = store_as or layer.dtype_policy
        if layer.name in folded_norms:
            return PassThrough(name=layer.name, dtype=dtype)
        config = layer.get_config()
        if store_as and not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = store_as
        for key in config:  # every weight is copied over next: skip the random draws
            if key.endswith("_initializer"):
                config[key] = "zeros"
        if layer.name in folds:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in folded.layers:
        if not layer.weights:
            continue
        original = model.get_layer(layer.name)
        if layer.name not in folds:
            layer.set_weights(original.get_weights())
            continue
        scale, shift = _affine(folds[layer.name])
        kernel, *bias = original.get_weights()
        if isinstance(original, keras.layers.DepthwiseConv2D):  # [h, w, in, multiplier]
            kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        else:  # [h, w, in, out]
            kernel = kernel * scale
        bias = bias[0] if bias else np.zeros_like(scale)
        layer.set_weights([kernel, bias * scale + shift])
    return folded


def _foldable_pairs(model: keras.Model) -> dict[str, Any]:
    """Convolution name -> the batch normalisation it alone feeds."""
    convolutions = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    pairs = {}
    for layer in model.layers:
        if (
            not isinstance(layer, keras.layers.BatchNormalization)
            or layer.axis not in (-1, 3)
            or len(layer._inbound_nodes) != 1  # a shared layer: one fold could not serve all
        ):
            continue
        source = layer.input._keras_history.operation
        if (
            isinstance(source, convolutions)
            and source.activation is keras.activations.linear
            and len(source._inbound_nodes) == 1
            and len(source._outbound_nodes) == 1
        ):
            pairs[source.name] = layer
    return pairs


def _affine(norm: keras.layers.BatchNormalization) -> tuple[Any, Any]:
    """(scale, shift) of an inference-mode batch normalisation, per channel, float32."""
    mean = np.asarray(norm.moving_mean, np.float32)
    variance = np.asarray(norm.moving_variance, np.float32)
    gamma = np.asarray(norm.gamma, np.float32) if norm.scale else np.ones_like(mean)
    beta = np.asarray(norm.beta, np.float32) if norm.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + norm.epsilon)
    return scale, beta - mean * scale


class PassThrough(keras.layers.Layer):
    """Where a folded normalisation was: its output is the convolution's now."""

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        return inputs
