"""What a dream aims at: a class of the classifier, single channels, and frames on the way."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dream_engine import DreamParams, ModelUnavailableError, ParamError, load_preset
from dream_engine.core import engine as engine_module
from dream_engine.core.classes import class_names
from dream_engine.core.engine import MAX_FRAMES, _to_unit, plan_frames
from dream_engine.core.models import MODELS, head_source, keras_cache_dir, load_head

ONE_OCTAVE = DreamParams(layers={}, octaves=1, iterations=6, max_loss=1e6)
PUG = class_names("dogs").index("Pug")


def dog_probabilities(engine, image: Image.Image) -> np.ndarray:
    """Softmax over the breeds, seen at the size the image was dreamed at."""
    logits = engine.logits(image)
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def channel_means(engine, image: Image.Image, layer: str) -> np.ndarray:
    extractor = keras.Model(engine.backbone.input, engine.backbone.get_layer(layer).output)
    return tf.reduce_mean(extractor(_to_unit(image)[tf.newaxis]), axis=[0, 1, 2]).numpy()


# -- class targets ------------------------------------------------------------------------------


def test_a_target_alone_raises_its_logit_on_the_random_network(inception_engine, cat_photo):
    before = inception_engine.logits(cat_photo)
    assert before.shape == (1000,)
    result = inception_engine.dream(cat_photo, ONE_OCTAVE.replace(target="golden retriever"))
    after = inception_engine.logits(result.image)
    assert after[207] > before[207]
    assert (after > after[207]).sum() < (before > before[207]).sum()  # it climbs the ranking


def test_a_dog_breed_target_makes_the_trained_network_see_that_breed(dogs_engine, cat_photo):
    before = dog_probabilities(dogs_engine, cat_photo)
    assert before[PUG] < 0.1  # Chelsea is a cat; the network is not sure of any breed
    alone = dogs_engine.dream(cat_photo, ONE_OCTAVE.replace(model="dogs", target="pug"))
    assert dog_probabilities(dogs_engine, alone.image)[PUG] > 0.5
    # With the layers of a preset the dream is still a dream, and now of pugs.
    with_layers = load_preset("dogs-dream").replace(octaves=1, iterations=8, target="pug")
    combined = dogs_engine.dream(cat_photo, with_layers)
    after = dog_probabilities(dogs_engine, combined.image)
    assert after[PUG] > 0.5 and after.argmax() == PUG
    plain = dogs_engine.dream(cat_photo, with_layers.replace(target=""))
    assert dog_probabilities(dogs_engine, plain.image)[PUG] < after[PUG]


def test_the_tiled_target_gradient_is_the_whole_images(dogs_engine, cat_photo):
    """The logit pools the whole image; tiles each treated as an image give its gradient."""
    img = _to_unit(cat_photo.resize((320, 224)))
    params = DreamParams(model="dogs", layers={}, target="golden retriever")
    untiled, tiled = (dogs_engine._stepper_for(params, tile) for tile in (None, 96))
    assert [int(v) for v in tiled._tiling(tf.constant(320))] == [96, 4]  # really tiled
    whole, _, _ = untiled._gradients(img, dogs_engine._weights(params))
    parts, _, _ = tiled._gradients(img, dogs_engine._weights(params))
    cosine = tf.reduce_sum(whole * parts) / (tf.norm(whole) * tf.norm(parts))
    assert float(cosine) > 0.9


def test_a_tiled_targeted_dream_runs_and_reaches_its_class(dogs_engine, cat_photo):
    params = ONE_OCTAVE.replace(model="dogs", target="pug", iterations=5)
    result = dogs_engine.dream(cat_photo, params, tile_size=96)  # 3x2 tiles of 96 px
    assert result.image.size == cat_photo.size
    assert dog_probabilities(dogs_engine, result.image)[PUG] > 0.5


def test_new_targets_channels_and_weights_do_not_retrace(dogs_engine, cat_photo):
    small = cat_photo.resize((96, 64))
    base = DreamParams(model="dogs", layers={"block_9_add": 1.0}, octaves=1, iterations=1)
    dogs_engine.dream(small, base.replace(target="pug", channels={"block_12_add:3": 1.0}))
    traces = dogs_engine.trace_count
    for target, channel, weight in [("samoyed", 7, 2.0), ("0", 95, 0.5), ("toy poodle", 0, 9.0)]:
        params = base.replace(
            target=target, target_weight=weight, channels={f"block_12_add:{channel}": weight}
        )
        dogs_engine.dream(small.resize((100, 77)), params)
    assert dogs_engine.trace_count == traces


# -- channels -----------------------------------------------------------------------------------


def test_a_channel_objective_raises_that_channel_above_the_others(inception_engine, cat_photo):
    params = ONE_OCTAVE.replace(channels={"mixed4:97": 1.0})
    before = channel_means(inception_engine, cat_photo, "mixed4")
    dream = inception_engine.dream(cat_photo, params).image
    after = channel_means(inception_engine, dream, "mixed4")
    rise = after - before
    assert rise[97] > 0
    assert rise[97] > 5 * np.median(np.abs(rise))  # it is the chosen one that moved
    assert rise[97] > rise[12]


def test_channel_numbers_are_checked_against_the_real_widths():
    for name in ("inceptionv3", "mobilenetv2", "vgg19"):
        spec = MODELS[name]
        assert len(spec.layer_widths) == len(spec.layers), name
    with pytest.raises(ParamError, match=r"mixed4 has 768 channels \(0-767\)"):
        DreamParams(layers={}, channels={"mixed4:768": 1.0}).validate()
    # The widths themselves are checked against the built networks in test_models.


# -- the class head -----------------------------------------------------------------------------


@pytest.mark.slow  # loads class heads
def test_the_random_head_is_seeded_and_the_dogs_head_is_labdogs():
    first, _ = load_head("inceptionv3", "random", seed=1)
    again, bias = load_head("inceptionv3", "random", seed=1)
    other, _ = load_head("inceptionv3", "random", seed=2)
    assert first.shape == (2048, 1000) and bias.shape == (1000,)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    kernel, bias = load_head("dogs", "imagenet")
    assert kernel.shape == (1280, 19) and np.abs(bias).sum() > 0  # trained, not zeros


@pytest.mark.slow  # builds a network with its head
def test_head_weights_from_a_local_file(tmp_path):
    full = keras.applications.MobileNetV2(include_top=True, weights=None)
    path = tmp_path / "mobilenet_v2_with_top.weights.h5"
    full.save_weights(path)
    kernel, bias = load_head("mobilenetv2", "random", head_weights=str(path))
    expected_kernel, expected_bias = full.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(kernel, expected_kernel)
    np.testing.assert_array_equal(bias, expected_bias)


def test_where_the_head_comes_from_and_what_to_do_when_it_cannot(tmp_path, monkeypatch):
    assert head_source("inceptionv3", "random") is None
    assert head_source("inceptionv3", "imagenet") == "imagenet"
    assert head_source("dogs", "imagenet").endswith("dog_breed_mobilenetv2.h5")
    notop = tmp_path / "notop.h5"
    notop.write_bytes(b"")
    with pytest.raises(ModelUnavailableError, match=r"--head-weights PATH .*DREAM_HEAD_WEIGHTS"):
        head_source("inceptionv3", str(notop))
    with pytest.raises(ModelUnavailableError, match="not found"):
        head_source("inceptionv3", "imagenet", head_weights=str(tmp_path / "nope.h5"))
    # Offline with an empty Keras cache: the message names the file and where it goes.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ModelUnavailableError) as error:
        load_head("mobilenetv2", "imagenet")
    expected = keras_cache_dir() / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    assert str(expected) in str(error.value) and "--head-weights" in str(error.value)


# -- frames for an animation --------------------------------------------------------------------


def test_frames_every_few_steps_across_octaves_at_the_final_size(inception_engine, noise_image):
    params = DreamParams(layers={"mixed2": 1.0}, octaves=2, iterations=6, max_loss=1e6)
    events = []
    result = inception_engine.dream(noise_image, params, on_progress=events.append, frame_every=2)
    # The photo, then steps 2 and 4 and the octave's end, in each of 2 octaves.
    assert len(result.frames) == 1 + 2 * 3
    assert {frame.size for frame in result.frames} == {noise_image.size}
    assert np.array_equal(np.asarray(result.frames[0]), np.asarray(noise_image))
    assert np.array_equal(np.asarray(result.frames[-1]), np.asarray(result.image))
    assert [len(history) for history in result.losses] == [6, 6]  # frames change no step
    every = inception_engine.progress_every  # progress keeps its own pace, frames or not
    expected = [step for step in range(1, 7) if step % every == 0 or step == 6]
    assert [event.step for event in events if event.octave == 1] == expected
    assert inception_engine.dream(noise_image, params).frames == []
    with pytest.raises(ParamError, match="frame_every"):
        inception_engine.dream(noise_image, params, frame_every=0)


def test_frames_are_spaced_out_when_there_would_be_too_many():
    notes: list[str] = []
    assert plan_frames(None, 3, 20, (640, 480), notes) is None
    assert plan_frames(5, 3, 20, (640, 480), notes) == 5 and notes == []
    every = plan_frames(1, 10, 1000, (640, 480), notes)
    assert 1 + 10 * -(-1000 // every) <= MAX_FRAMES
    huge = plan_frames(1, 3, 30, (4096, 4096), notes)  # 48 MiB a frame: about 10 frames
    assert 1 + 3 * -(-30 // huge) <= 12
    assert "a frame every" in notes[-1] and "4096x4096" in notes[-1]


def test_more_octaves_than_frames_keep_the_last_ones_within_the_budget(
    inception_engine, noise_image, monkeypatch
):
    # A budget of 4 frames at this size, as a 20 MP photo gets about 8 of 100.
    size = noise_image.size
    monkeypatch.setattr(engine_module, "FRAME_MEMORY_BYTES", 4 * 3 * size[0] * size[1])
    params = DreamParams(layers={"mixed3": 1.0}, octaves=5, octave_scale=1.05, iterations=2)
    result = inception_engine.dream(noise_image, params, frame_every=1)
    assert len(result.octaves) == 5 and len(result.frames) == 4
    assert np.array_equal(np.asarray(result.frames[0]), np.asarray(noise_image))
    assert np.array_equal(np.asarray(result.frames[-1]), np.asarray(result.image))
    assert any("frames of the last 3 of 5 octaves only" in note for note in result.notes)
