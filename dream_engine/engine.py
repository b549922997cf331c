"""Octave gradient ascent with detail re-injection: the DeepDream algorithm.

Read `DreamEngine.dream` top to bottom for the whole algorithm (it follows the
Keras `deep_dream` example). The inner loop, `_GradientAscent`, is one
`tf.function` with an input signature of unknown height and width: a new image
size never retraces, which matters because every upload has its own size. It
runs a chunk of steps in-graph (the `max_loss` stop included) and returns to
Python between chunks only to report progress and honour cancellation.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from dream_engine.errors import DreamCancelled, ImageError, ParamError
from dream_engine.images import DEFAULT_MIN_SIDE, fit_within
from dream_engine.models import DEFAULT_MODEL, get_model_spec, load_backbone
from dream_engine.params import DEFAULT_TILE_SIZE, PRECISIONS, DreamParams
from dream_engine.results import DreamResult, Progress

CHUNK_STEPS = 5  # steps per graph call: progress and cancel are checked this often
TILE_MARGIN_DIVISOR = 8  # each tile is seen with tile_size // 8 of context around it,
MIN_TILE_MARGIN = 96  # at least the border trim at the deepest stride and a model's minimum
# Tiles start on multiples of the deepest stride, so each tile's activation grid is the
# whole image's grid: tiled and untiled see the same features.
TILE_ALIGN = 32
# float16 gradients of small activations underflow; the gradient is normalised
# after, so scaling the loss up costs nothing and needs no unscaling.
FLOAT16_LOSS_SCALE = 128.0
STEPPER_CACHE_SIZE = 8  # compiled layer combinations kept per engine
MAX_ASPECT_RATIO = 20


class EngineDefault:
    """Marks "the engine's own setting" where None already means something (no tiling)."""


ENGINE_DEFAULT = EngineDefault()
CancelFlag = threading.Event | Callable[[], bool] | None
ProgressCallback = Callable[[Progress], None] | None


class DreamEngine:
    """A model built once per process, dreaming any number of images of any size."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        weights: str = "imagenet",
        seed: int = 0,
        chunk_steps: int = CHUNK_STEPS,
        precision: str = "float32",
        tile_size: int | None = DEFAULT_TILE_SIZE,
    ) -> None:
        if precision not in PRECISIONS:
            raise ParamError(f"precision: choose from {', '.join(PRECISIONS)}.")
        if tile_size is not None and tile_size < 2 * get_model_spec(model).min_side:
            raise ParamError(
                f"tile_size: at least {2 * get_model_spec(model).min_side} px for {model}."
            )
        self.spec = get_model_spec(model)
        self.weights = weights
        self.precision = precision
        self.tile_size = tile_size
        self.backbone = load_backbone(model, weights, seed, precision=precision)
        self.chunk_steps = chunk_steps
        self.trace_count = 0  # graph traces so far; stays flat across image sizes
        self._steppers: OrderedDict[tuple[tuple[str, ...], int | None], _GradientAscent] = (
            OrderedDict()
        )

    @property
    def model_name(self) -> str:
        return self.spec.name

    def warm_up(self, params: DreamParams) -> None:
        """Trace and run `params`' graph once on a small image, so the first user waits less.

        One trace serves every later image size, tiled or not.
        """
        side = 2 * self.spec.min_side
        self.dream(
            Image.new("RGB", (side, side), (128, 128, 128)), params.replace(octaves=1, iterations=1)
        )

    def dream(
        self,
        image: Image.Image,
        params: DreamParams,
        on_progress: ProgressCallback = None,
        cancel: CancelFlag = None,
        max_side: int | None = None,
        tile_size: int | EngineDefault | None = ENGINE_DEFAULT,
    ) -> DreamResult:
        """Dream `image`; raises `ParamError`/`ImageError` for bad input, `DreamCancelled`.

        `tile_size` overrides the engine's for this dream (a smaller retry after
        running out of memory); each tile size keeps its own compiled loop.
        """
        tile = self.tile_size if isinstance(tile_size, EngineDefault) else tile_size
        started = time.perf_counter()
        params.validate()
        if params.model != self.spec.name:
            raise ParamError(
                f"model: these parameters are for {params.model}, but this engine runs "
                f"{self.spec.name}."
            )
        image, notes = self._prepare(image, max_side)
        shapes, dropped = octave_shapes(
            (image.height, image.width), params.octaves, params.octave_scale, self.spec.min_side
        )
        if dropped:
            notes.append(
                f"ran {len(shapes)} of {params.octaves} octaves: image too small for more "
                f"(the smallest octave must be {self.spec.min_side} px)"
            )
        active = params.active_layers()
        stepper = self._stepper(tuple(active), tile)
        weights = tf.constant(list(active.values()), tf.float32)

        original = _to_unit(image)
        img = original
        shrunk_original = tf.image.resize(original, shapes[0])
        octave_images: list[Image.Image] = []
        losses: list[list[float]] = []
        for index, shape in enumerate(shapes):
            img = tf.image.resize(img, shape)
            history: list[float] = []
            stopped = False
            while len(history) < params.iterations and not stopped:
                if _is_cancelled(cancel):
                    raise DreamCancelled()
                chunk = min(self.chunk_steps, params.iterations - len(history))
                img, chunk_losses, stopped_t = stepper(
                    img,
                    tf.constant(chunk),
                    tf.constant(params.step, tf.float32),
                    tf.constant(params.max_loss, tf.float32),
                    weights,
                    tf.constant(params.jitter),
                    tf.constant([params.seed, index * 100_000 + len(history)]),
                )
                history.extend(chunk_losses.numpy().tolist())
                stopped = bool(stopped_t)
                if on_progress is not None:
                    on_progress(
                        Progress(
                            octave=index + 1,
                            octaves=len(shapes),
                            step=len(history),
                            steps=params.iterations,
                            loss=history[-1],
                            elapsed=time.perf_counter() - started,
                            octave_done=stopped or len(history) >= params.iterations,
                        )
                    )
            # Re-inject the detail that shrinking the original lost at this size.
            same_size_original = tf.image.resize(original, shape)
            img = img + same_size_original - tf.image.resize(shrunk_original, shape)
            shrunk_original = same_size_original
            octave_images.append(_to_image(img))
            losses.append(history)
        return DreamResult(
            image=octave_images[-1],
            octaves=octave_images,
            losses=losses,
            params=params,
            seconds=time.perf_counter() - started,
            notes=notes,
        )

    def _prepare(self, image: Image.Image, max_side: int | None) -> tuple[Image.Image, list[str]]:
        """RGB, within `max_side`, and at least the model's minimum input."""
        notes: list[str] = []
        image = image.convert("RGB")
        width, height = image.size
        if min(width, height) < DEFAULT_MIN_SIDE:
            raise ImageError(
                f"This image is {width}x{height} px, too small to dream; send one at least "
                f"{DEFAULT_MIN_SIDE} px on each side (a few hundred is best)."
            )
        if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
            raise ImageError(
                f"This image is {width}x{height} px, too long and thin to dream (more than "
                f"{MAX_ASPECT_RATIO}:1); crop it closer to a square."
            )
        if max_side is not None and max(width, height) > max_side:
            image = fit_within(image, max_side)
            notes.append(f"scaled down from {width}x{height} to {image.width}x{image.height}")
        short = min(image.size)
        if short < self.spec.min_side:
            factor = self.spec.min_side / short
            size = (
                max(self.spec.min_side, round(image.width * factor)),
                max(self.spec.min_side, round(image.height * factor)),
            )
            notes.append(
                f"upscaled from {image.width}x{image.height} to {size[0]}x{size[1]}: "
                f"{self.spec.name} needs at least {self.spec.min_side} px"
            )
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image, notes

    def _stepper(self, layers: tuple[str, ...], tile_size: int | None) -> _GradientAscent:
        """One compiled loop per layer combination and tile size, least recently used out."""
        key = (layers, tile_size)
        if key in self._steppers:
            self._steppers.move_to_end(key)
            return self._steppers[key]
        import keras

        outputs = [self.backbone.get_layer(name).output for name in layers]
        # Keras keeps only the layers these outputs need: the extractor stops at the
        # deepest weighted layer, so unused upper layers cost nothing.
        extractor = keras.Model(self.backbone.input, outputs)
        stepper = _GradientAscent(
            extractor,
            self.spec.input_from_unit,
            self._count_trace,
            tile_size=tile_size,
            loss_scale=FLOAT16_LOSS_SCALE if self.precision == "mixed_float16" else 1.0,
        )
        self._steppers[key] = stepper
        while len(self._steppers) > STEPPER_CACHE_SIZE:
            self._steppers.popitem(last=False)
        return stepper

    def _count_trace(self) -> None:
        self.trace_count += 1


class _GradientAscent:
    """`steps` of normalised gradient ascent on the weighted layer activations, in-graph."""

    def __init__(
        self,
        extractor: object,
        input_from_unit: Callable[[tf.Tensor], tf.Tensor] | None,
        on_trace: Callable[[], None],
        tile_size: int | None,
        loss_scale: float = 1.0,
    ) -> None:
        self._extractor = extractor
        self._input_from_unit = input_from_unit
        self._on_trace = on_trace
        self._tile_size = tile_size
        self._margin = _round_up(
            max((tile_size or 0) // TILE_MARGIN_DIVISOR, MIN_TILE_MARGIN), TILE_ALIGN
        )
        self._loss_scale = loss_scale
        self._run = tf.function(
            self._loop,
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.float32),  # image in [-1, 1]
                tf.TensorSpec([], tf.int32),  # steps
                tf.TensorSpec([], tf.float32),  # step size
                tf.TensorSpec([], tf.float32),  # max_loss
                tf.TensorSpec([None], tf.float32),  # layer weights
                tf.TensorSpec([], tf.int32),  # jitter (max roll in px)
                tf.TensorSpec([2], tf.int32),  # seed for the rolls
            ],
        )

    def __call__(self, *args: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return self._run(*args)

    def _loss(self, img: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        batch = img[tf.newaxis]
        if self._input_from_unit is not None:
            batch = self._input_from_unit(batch)
        activations = self._extractor(batch, training=False)
        if not isinstance(activations, Sequence):
            activations = [activations]
        total = tf.constant(0.0)
        for index, activation in enumerate(activations):
            activation = tf.cast(
                _trim_border(activation), tf.float32
            )  # mixed precision: sum in fp32
            total += weights[index] * tf.reduce_mean(tf.square(activation))
        return total

    def _gradients(self, img: tf.Tensor, weights: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Gradient of the whole image and its loss, computed tile by tile.

        Peak memory then depends on the tile, not the image. Tiles cover every
        pixel and start on the deepest stride's grid; each is seen with a margin of
        context (whose gradient is dropped), so its features are the whole image's.
        Each tile's loss is weighted by its area, so the loss is the image-wide mean
        whatever the tile count, and one tile is exactly the untiled computation.
        """
        height, width = tf.shape(img)[0], tf.shape(img)[1]
        (tile_h, rows), (tile_w, cols) = self._tiling(height), self._tiling(width)

        margin = tf.where(rows * cols > 1, self._margin, 0)

        def tile_body(k: tf.Tensor, grads: tf.Tensor, weighted_loss: tf.Tensor):
            top, left = (k // cols) * tile_h, (k % cols) * tile_w
            bottom, right = tf.minimum(top + tile_h, height), tf.minimum(left + tile_w, width)
            # The network sees a margin of context around the tile, so its zero
            # padding falls in the margin, whose gradient is dropped.
            outer_top, outer_left = tf.maximum(top - margin, 0), tf.maximum(left - margin, 0)
            outer_bottom = tf.minimum(bottom + margin, height)
            outer_right = tf.minimum(right + margin, width)
            with tf.GradientTape() as tape:
                tile = img[outer_top:outer_bottom, outer_left:outer_right]
                tape.watch(tile)
                loss = self._loss(tile, weights)
                scaled = loss * self._loss_scale
            tile_grads = tape.gradient(scaled, tile)
            core = tile_grads[
                top - outer_top : bottom - outer_top, left - outer_left : right - outer_left
            ]
            area = tf.cast((bottom - top) * (right - left), tf.float32)
            placed = tf.pad(core * area, [[top, height - bottom], [left, width - right], [0, 0]])
            return k + 1, grads + placed, weighted_loss + loss * area

        _, grads, weighted_loss = tf.while_loop(
            lambda k, grads, weighted_loss: k < rows * cols,
            tile_body,
            (tf.constant(0), tf.zeros_like(img), tf.constant(0.0)),
        )
        return grads, weighted_loss / tf.cast(height * width, tf.float32)

    def _tiling(self, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(tile length, tile count) along one axis: aligned tiles covering `size`."""
        if self._tile_size is None:
            return size, tf.constant(1)
        count = (size + self._tile_size - 1) // self._tile_size
        length = _round_up((size + count - 1) // count, TILE_ALIGN)
        return length, (size + length - 1) // length

    def _loop(
        self,
        img: tf.Tensor,
        steps: tf.Tensor,
        step_size: tf.Tensor,
        max_loss: tf.Tensor,
        weights: tf.Tensor,
        jitter: tf.Tensor,
        seed: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        self._on_trace()  # Python side effect: runs once per trace, never per call
        (tile_h, rows), (tile_w, cols) = (
            self._tiling(tf.shape(img)[0]),
            self._tiling(tf.shape(img)[1]),
        )
        # Tiles need a random roll each step, or their borders would show as seams.
        roll = tf.where(
            rows * cols > 1, tf.maximum(jitter, tf.minimum(tile_h, tile_w) // 2), jitter
        )

        def body(i: tf.Tensor, img: tf.Tensor, losses: tf.TensorArray, stopped: tf.Tensor):
            shift = tf.random.stateless_uniform(
                [2],
                seed=seed + tf.stack([0, i]),
                minval=-roll,
                maxval=roll + 1,
                dtype=tf.int32,
            )
            rolled = tf.roll(img, shift, axis=[0, 1])
            grads, loss = self._gradients(rolled, weights)
            grads /= tf.maximum(tf.reduce_mean(tf.abs(grads)), 1e-6)
            img = tf.roll(rolled + step_size * grads, -shift, axis=[0, 1])
            return i + 1, img, losses.write(i, loss), loss > max_loss

        _, img, losses, stopped = tf.while_loop(
            lambda i, img, losses, stopped: tf.logical_and(i < steps, tf.logical_not(stopped)),
            body,
            (
                tf.constant(0),
                img,
                tf.TensorArray(tf.float32, size=0, dynamic_size=True),
                tf.constant(False),
            ),
        )
        return img, losses.stack(), stopped


def _round_up(value, multiple):  # works on ints and int tensors alike
    return (value + multiple - 1) // multiple * multiple


def _trim_border(activation: tf.Tensor) -> tf.Tensor:
    """Drop 2 px of border (edge artefacts), unless the map is too small to spare them."""
    height, width = tf.shape(activation)[1], tf.shape(activation)[2]
    border = tf.where(tf.minimum(height, width) > 4, 2, 0)
    return activation[:, border : height - border, border : width - border, :]


def octave_shapes(
    size: tuple[int, int], octaves: int, scale: float, min_side: int
) -> tuple[list[tuple[int, int]], int]:
    """Octave sizes smallest first, and how many were dropped for being under `min_side`."""
    height, width = size
    shapes = [(round(height / scale**i), round(width / scale**i)) for i in reversed(range(octaves))]
    kept = [shape for shape in shapes if min(shape) >= min_side]
    return kept, len(shapes) - len(kept)


def _to_unit(image: Image.Image) -> tf.Tensor:
    return tf.constant(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)


def _to_image(img: tf.Tensor) -> Image.Image:
    pixels = np.clip((img.numpy() + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _is_cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())
