"""Batch norms folded into convolutions: the same features at every dream layer, fewer layers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dream_engine.core.folding import PassThrough, fold_batch_norm
from dream_engine.core.models import MODELS, load_backbone


def batch_norms(model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def assert_same_features(plain, folded, layers, image) -> None:
    """Each layer's output agrees to float32 rounding, relative to its own scale."""
    names = list(layers)
    before = keras.Model(plain.input, [plain.get_layer(name).output for name in names])(image)
    after = keras.Model(folded.input, [folded.get_layer(name).output for name in names])(image)
    for name, ours, theirs in zip(names, after, before, strict=True):
        theirs = np.asarray(theirs)
        scale = np.abs(theirs).max()
        assert scale > 0, name
        np.testing.assert_allclose(np.asarray(ours), theirs, atol=2e-5 * scale, err_msg=name)


def test_dogs_features_survive_folding_with_trained_statistics(dogs_engine, cat_photo):
    plain = load_backbone("dogs", "imagenet")
    image = np.asarray(cat_photo, np.float32)[np.newaxis] / 127.5 - 1.0
    assert_same_features(plain, dogs_engine.backbone, MODELS["dogs"].layers, image)
    # Every normalisation of MobileNetV2 follows a convolution: none is left to run.
    assert batch_norms(plain) and not batch_norms(dogs_engine.backbone)
    passes = [layer for layer in dogs_engine.backbone.layers if isinstance(layer, PassThrough)]
    assert len(passes) == len(batch_norms(plain))
    assert batch_norms(plain)[0].name in {layer.name for layer in passes}


@pytest.mark.slow  # builds InceptionV3
def test_inception_features_survive_folding_with_nontrivial_statistics():
    # Random weights come with mean 0 / variance 1 statistics, which fold to nothing:
    # give every normalisation its own, so the fold has something to get wrong.
    plain = load_backbone("inceptionv3", "random", seed=3)
    rng = np.random.default_rng(0)
    for norm in batch_norms(plain):
        beta, mean, variance = norm.get_weights()  # InceptionV3's have no gamma
        norm.set_weights(
            [
                rng.normal(0, 0.5, beta.shape).astype(np.float32),
                rng.normal(0, 0.5, mean.shape).astype(np.float32),
                rng.uniform(0.2, 3.0, variance.shape).astype(np.float32),
            ]
        )
    folded = fold_batch_norm(plain)
    image = np.random.default_rng(1).uniform(-1, 1, (1, 160, 200, 3)).astype(np.float32)
    assert_same_features(plain, folded, MODELS["inceptionv3"].layers[:8], image)
    assert batch_norms(plain), "the original is left as it was"
    assert not batch_norms(folded)


def test_only_a_linear_convolution_that_feeds_nothing_else_is_folded():
    inputs = keras.Input((None, None, 4))
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    shared_norm = keras.layers.BatchNormalization(name="shared_bn")(shared)
    activated = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="relu_conv")(
        inputs
    )
    activated_norm = keras.layers.BatchNormalization(name="relu_bn")(activated)
    depthwise = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(
        inputs
    )
    depthwise_norm = keras.layers.BatchNormalization(name="dw_bn")(depthwise)
    merged = keras.layers.Concatenate(name="merged")(
        [shared_norm, shared, activated_norm, depthwise_norm]
    )
    plain = keras.Model(inputs, merged)
    rng = np.random.default_rng(2)
    for norm in batch_norms(plain):
        gamma, beta, mean, variance = norm.get_weights()
        norm.set_weights(
            [
                rng.uniform(0.5, 2.0, gamma.shape).astype(np.float32),
                rng.normal(0, 1, beta.shape).astype(np.float32),
                rng.normal(0, 1, mean.shape).astype(np.float32),
                rng.uniform(0.2, 3.0, variance.shape).astype(np.float32),
            ]
        )
    folded = fold_batch_norm(plain)
    kinds = {layer.name: type(layer).__name__ for layer in folded.layers}
    assert kinds["dw_bn"] == "PassThrough"  # folded into the depthwise kernel
    assert kinds["shared_bn"] == "BatchNormalization"  # its convolution is used elsewhere too
    assert kinds["relu_bn"] == "BatchNormalization"  # a ReLU stands between them
    image = rng.uniform(-1, 1, (1, 9, 11, 4)).astype(np.float32)
    np.testing.assert_allclose(folded(image), plain(image), rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # builds MobileNetV2
def test_folding_keeps_mixed_precision():
    plain = load_backbone("mobilenetv2", "random", precision="mixed_bfloat16")
    folded = fold_batch_norm(plain)
    convolution = folded.get_layer("Conv1")
    assert convolution.compute_dtype == "bfloat16"
    assert convolution.kernel.dtype == "float32"  # variables stay float32
    assert folded.get_layer("bn_Conv1").compute_dtype == "bfloat16"
