"""Transformation robustness: the network's view scaled and rotated at random each step,
seeded, about the centre, with the gradient carried back to the unresampled image."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dream_engine import DreamParams, ParamError
from dream_engine.core.transforms import random_view

SEED = tf.constant([3, 4])


@pytest.fixture(scope="module")
def picture() -> tf.Tensor:
    return tf.random.stateless_uniform([91, 121, 3], seed=[1, 2], minval=-1.0, maxval=1.0)


def view(picture: tf.Tensor, scale: float, degrees: float, seed: tf.Tensor = SEED) -> np.ndarray:
    return random_view(picture, tf.constant(scale), tf.constant(degrees), seed).numpy()


def test_no_scale_and_no_rotation_is_the_image_itself(picture):
    np.testing.assert_array_equal(view(picture, 0.0, 0.0), picture.numpy())


def test_a_view_keeps_the_size_and_turns_about_the_centre(picture):
    turned = view(picture, 0.1, 20.0)
    assert turned.shape == picture.shape
    assert np.abs(turned - picture.numpy()).mean() > 0.1  # it moved
    np.testing.assert_allclose(turned[45, 60], picture.numpy()[45, 60], atol=1e-5)


def test_the_seed_draws_the_view(picture):
    np.testing.assert_array_equal(view(picture, 0.1, 20.0), view(picture, 0.1, 20.0))
    other = view(picture, 0.1, 20.0, tf.constant([3, 5]))
    assert np.abs(other - view(picture, 0.1, 20.0)).mean() > 0.01


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("scale_jitter", 0.6, "scale_jitter must be in [0, 0.5]"),
        ("scale_jitter", -0.1, "scale_jitter"),
        ("rotate_jitter", 46.0, "rotate_jitter must be in [0, 45]"),
    ],
)
def test_out_of_range_transforms_are_refused_by_name(field, value, words):
    with pytest.raises(ParamError, match=words.replace("[", r"\[")):
        DreamParams(**{field: value}).validate()


def test_a_transform_makes_the_seed_matter():
    assert not DreamParams().seed_matters
    assert DreamParams(rotate_jitter=5.0).seed_matters
    assert DreamParams(scale_jitter=0.05).transformed


@pytest.mark.slow  # dreams on the session's InceptionV3
def test_a_transformed_dream_is_seeded_and_traces_once_for_every_size(inception_engine):
    params = DreamParams(
        layers={"mixed3": 1.0}, octaves=1, iterations=3, scale_jitter=0.05, rotate_jitter=5.0
    )
    rng = np.random.default_rng(9)
    photos = [
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for width, height in ((120, 90), (149, 103))
    ]
    first = inception_engine.dream(photos[0], params)
    traces = inception_engine.trace_count
    assert inception_engine.dream(photos[1], params).image.size == photos[1].size
    again = inception_engine.dream(photos[0], params)
    assert inception_engine.trace_count == traces  # a new size, a new seed: no new trace
    np.testing.assert_array_equal(np.asarray(again.image), np.asarray(first.image))
    reseeded = inception_engine.dream(photos[0], params.replace(seed=1))
    plain = inception_engine.dream(photos[0], params.replace(scale_jitter=0.0, rotate_jitter=0.0))
    for other in (reseeded, plain):
        apart = np.abs(np.asarray(other.image, np.int16) - np.asarray(first.image, np.int16))
        assert apart.mean() > 0.3
