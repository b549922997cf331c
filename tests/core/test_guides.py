"""Guide images (google/deepdream's "controlling dreams"): each position is pulled towards
the guide's best-matching features, computed once a dream, with no retrace for any size."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dream_engine import DreamParams, ParamError
from dream_engine.core.ascent import guide_match


def test_each_position_is_scored_against_its_best_matching_guide_feature():
    features = tf.constant([[[[1.0, 0.0], [0.0, 2.0]]]])  # 1x1x2 positions, 2 channels
    guide = tf.constant([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    with tf.GradientTape() as tape:
        tape.watch(features)
        score = guide_match(features, guide)
    # (1,0) best matches (2,0): 2; (0,2) best matches (0,1): 2; their mean.
    assert float(score) == pytest.approx(2.0)
    # The match is held fixed: each position is pulled along its guide feature.
    pull = tape.gradient(score, features).numpy().reshape(2, 2)
    np.testing.assert_allclose(pull, [[1.0, 0.0], [0.0, 0.5]])


@pytest.mark.slow  # dreams on the session's InceptionV3
def test_a_guided_dream_differs_and_traces_once_for_every_image_and_guide_size(
    inception_engine, cat_photo
):
    params = DreamParams(layers={"mixed3": 1.0}, octaves=1, iterations=3, guide_weight=5.0)
    rng = np.random.default_rng(11)
    guide = Image.fromarray(rng.integers(0, 256, (120, 150, 3), dtype=np.uint8))
    plain = inception_engine.dream(cat_photo, params)
    guided = inception_engine.dream(cat_photo, params, guide=guide)
    traces = inception_engine.trace_count
    again = inception_engine.dream(cat_photo, params, guide=guide)
    inception_engine.dream(cat_photo.resize((150, 101)), params, guide=guide.resize((90, 130)))
    assert inception_engine.trace_count == traces  # other sizes of image and guide: no trace
    np.testing.assert_array_equal(np.asarray(again.image), np.asarray(guided.image))
    apart = np.abs(np.asarray(plain.image, np.int16) - np.asarray(guided.image, np.int16))
    assert apart.mean() > 0.3
    assert guided.losses[-1][-1] > plain.losses[-1][-1]  # the guide's match adds to the climb


@pytest.mark.slow
def test_a_guide_needs_a_weighted_layer_to_be_matched_at(inception_engine, cat_photo):
    channels_only = DreamParams(layers={}, channels={"mixed3:5": 1.0}, octaves=1, iterations=1)
    with pytest.raises(ParamError, match="guide: a guide is matched at the weighted layers"):
        inception_engine.dream(cat_photo, channels_only, guide=cat_photo)
