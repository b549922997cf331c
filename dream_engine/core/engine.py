"""Octave gradient ascent with detail re-injection: the DeepDream algorithm.

Read `DreamEngine.dream` top to bottom for the whole algorithm (it follows the
Keras `deep_dream` example). The inner step, `ascent.GradientAscent`, is one
`tf.function` with an input signature of unknown height and width: a new image
size never retraces, which matters because every upload has its own size. It
runs one step a call; between steps Python reads the objective for the
`max_loss` stop, honours cancellation, reports progress and, when asked, keeps
a frame for an animation.

The objective is a weighted sum of whole layers (mean squared activation),
single channels (mean activation) and one class logit of the model's
classifier; see `DreamParams` for why each is measured that way.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from PIL import Image

from dream_engine.core.ascent import GradientAscent, Objective, Terms
from dream_engine.core.folding import fold_batch_norm
from dream_engine.core.hardware import apply_threads, choose_precision, plan_threads
from dream_engine.core.models import DEFAULT_MODEL, get_model_spec, load_backbone, load_head
from dream_engine.core.params import (
    DEFAULT_TILE_SIZE,
    MAX_TILE_SIZE,
    PRECISION_CHOICES,
    DreamParams,
)
from dream_engine.core.results import DreamResult, Progress
from dream_engine.core.tiling import (
    DEFAULT_MIN_SIDE,
    MAX_ASPECT_RATIO,
    tiles_needed,
    working_size,
)
from dream_engine.errors import DreamCancelled, ImageError, ModelUnavailableError, ParamError

log = logging.getLogger(__name__)

PROGRESS_EVERY = 5  # steps between progress reports (cancel is checked every step)
# float16 gradients of small activations underflow; the gradient is normalised
# after, so scaling the loss up costs nothing and needs no unscaling.
FLOAT16_LOSS_SCALE = 128.0
GUIDE_MAX_SIDE = 320  # a guide is seen at about the network's own scale; its matches stay small
STEPPER_CACHE_SIZE = 16  # compiled steps kept per engine (a layer combination, tiled or not)
# Animation frames are kept in memory at the final size until the dream ends: at most
# this many, and about this many bytes (a larger image gets fewer, further apart).
MAX_FRAMES = 100
FRAME_MEMORY_BYTES = 512 * 2**20


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
        progress_every: int = PROGRESS_EVERY,
        precision: str = "auto",
        tile_size: int | None = DEFAULT_TILE_SIZE,
        head_weights: str | None = None,
        threads: int | None = None,
    ) -> None:
        """`head_weights`: a with-classifier weights file for targets (default: see
        `models.head_source`); the class head is loaded on the first targeted dream.
        `threads`: TensorFlow threads per op (None: the CPUs this process may use, read
        from its affinity and cgroup quota, so a small container is not oversubscribed)."""
        self.thread_plan = plan_threads(threads)
        apply_threads(self.thread_plan)  # before the first op starts TensorFlow's pools
        if precision not in PRECISION_CHOICES:
            raise ParamError(f"precision: choose from {', '.join(PRECISION_CHOICES)}.")
        self.spec = get_model_spec(model)
        self.weights = weights
        # `auto`: the fastest precision this device computes natively and this model gains
        # from; the choice and its reason are logged and shown by the CLI and /dreamadmin.
        self.precision_choice = choose_precision(self.spec.name, precision)
        precision = self.precision = self.precision_choice.precision
        log.info("%s at %s: %s", self.spec.name, precision, self.precision_choice.reason)
        self.tile_size = self._checked_tile_size(tile_size)
        self.seed = seed
        self.head_weights = head_weights
        # The same network with its batch norms folded into the convolutions, its weights
        # stored in the dtype they compute in (see folding.py).
        compute_dtype = precision.removeprefix("mixed_")
        self.backbone = fold_batch_norm(
            load_backbone(model, weights, seed, precision=precision),
            store_as=None if compute_dtype == "float32" else compute_dtype,
        )
        self.progress_every = progress_every
        self.trace_count = 0  # graph traces so far; stays flat across image sizes
        self._steppers: OrderedDict[tuple[object, ...], GradientAscent] = OrderedDict()
        self._head: tuple[tf.Variable, tf.Variable] | None = None

    @property
    def model_name(self) -> str:
        return self.spec.name

    def _checked_tile_size(self, tile_size: int | None) -> int | None:
        """`tile_size` in the range this model can tile at; 0 or None means no tiles."""
        if not tile_size:
            return None
        floor = 2 * self.spec.min_side
        if not floor <= tile_size <= MAX_TILE_SIZE:
            raise ParamError(
                f"tile_size: from {floor} to {MAX_TILE_SIZE} px for {self.spec.name} "
                "(0 or none: no tiles)."
            )
        return tile_size

    def warm_up(self, params: DreamParams) -> None:
        """Trace and run `params`' graph once on a small image, so the first user waits less.

        One trace serves every later image size that fits a tile; the tiled form is
        traced at the first larger image.
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
        frame_every: int | None = None,
        guide: Image.Image | None = None,
    ) -> DreamResult:
        """Dream `image`; raises `ParamError`/`ImageError` for bad input, `DreamCancelled`.

        `guide`: an image whose features the dream grows (google/deepdream's "controlling
        dreams"): at each weighted layer each position is pulled towards the guide's
        best-matching feature, `params.guide_weight` times the layer's weight.

        `tile_size` overrides the engine's for this dream (a smaller retry after
        running out of memory); each tile size keeps its own compiled loop.
        `frame_every` keeps a frame every that many steps of each octave, for an
        animation (`DreamResult.frames`, see `plan_frames`).
        """
        tile = (
            self.tile_size
            if isinstance(tile_size, EngineDefault)
            else self._checked_tile_size(tile_size)
        )
        started = time.perf_counter()
        params.validate()
        if params.model != self.spec.name:
            raise ParamError(
                f"model: these parameters are for {params.model}, but this engine runs "
                f"{self.spec.name}."
            )
        if frame_every is not None and (
            isinstance(frame_every, bool) or not isinstance(frame_every, int) or frame_every < 1
        ):
            raise ParamError("frame_every must be a whole number of steps, at least 1.")
        image, notes = self._prepare(image, max_side)
        if guide is not None:
            if not params.active_layers():
                raise ParamError("guide: a guide is matched at the weighted layers; give one.")
            guide = self._prepare(guide, GUIDE_MAX_SIDE)[0]
        shapes, dropped = octave_shapes(
            (image.height, image.width), params.octaves, params.octave_scale, self.spec.min_side
        )
        if dropped:
            notes.append(
                f"ran {len(shapes)} of {params.octaves} octaves: image too small for more "
                f"(the smallest octave must be {self.spec.min_side} px)"
            )
        objective = self._weights(params)
        every = plan_frames(frame_every, len(shapes), params.iterations, image.size, notes)
        frames = _Frames(image, frame_limit(image.size)) if every else None

        original = _to_unit(image)
        img = original
        shrunk_original = tf.image.resize(original, shapes[0])
        octave_images: list[Image.Image] = []
        losses: list[list[float]] = []
        for index, shape in enumerate(shapes):
            img = tf.image.resize(img, shape)
            # An octave that fits one tile takes the untiled loop, which skips the
            # tile machinery; each form is compiled once, at its first use.
            stepper = self._stepper_for(
                params, tile if tiles_needed(shape, tile) > 1 else None, guided=guide is not None
            )
            if guide is not None and not objective.guides:  # once a dream, at its layers
                guides = stepper.guide_features(_to_unit(guide))
                weight = tf.constant(params.guide_weight, tf.float32)
                objective = objective._replace(guide_weight=weight, guides=guides)
            history: list[float] = []
            stopped = False
            while len(history) < params.iterations and not stopped:
                if _is_cancelled(cancel):
                    raise DreamCancelled()
                img, loss, activation = stepper(
                    img,
                    tf.constant(params.step, tf.float32),
                    objective,
                    tf.constant(params.jitter),
                    tf.constant([params.seed, index * 100_000 + len(history)]),
                    tf.constant(params.scale_jitter, tf.float32),
                    tf.constant(params.rotate_jitter, tf.float32),
                )
                history.append(float(loss))
                stopped = float(activation) > params.max_loss
                octave_done = stopped or len(history) >= params.iterations
                if frames and len(history) % every == 0 and not octave_done:
                    frames.add(_to_image(img))
                if on_progress is not None and (
                    octave_done or len(history) % self.progress_every == 0
                ):
                    on_progress(
                        Progress(
                            octave=index + 1,
                            octaves=len(shapes),
                            step=len(history),
                            steps=params.iterations,
                            loss=history[-1],
                            elapsed=time.perf_counter() - started,
                            octave_done=octave_done,
                        )
                    )
            # Re-inject the detail that shrinking the original lost at this size.
            same_size_original = tf.image.resize(original, shape)
            img = img + same_size_original - tf.image.resize(shrunk_original, shape)
            shrunk_original = same_size_original
            octave_images.append(_to_image(img))
            losses.append(history)
            if frames:  # the octave's end, detail re-injected: what the next octave starts from
                frames.add(octave_images[-1])
        return DreamResult(
            image=octave_images[-1],
            octaves=octave_images,
            losses=losses,
            params=params,
            seconds=time.perf_counter() - started,
            notes=notes,
            frames=frames.kept if frames else [],
        )

    def logits(self, image: Image.Image) -> np.ndarray:
        """The classifier's pre-softmax outputs for the whole `image` at its own size.

        Names are `classes.class_names(model)`; loads the class head like a target does.
        """
        kernel, bias = self._class_head()
        batch = _to_unit(image.convert("RGB"))[tf.newaxis]
        if self.spec.input_from_unit is not None:
            batch = self.spec.input_from_unit(batch)
        features = tf.cast(self.backbone(batch, training=False), tf.float32)
        pooled = tf.reduce_mean(features, axis=[1, 2])
        return (tf.matmul(pooled, kernel) + bias)[0].numpy()

    def _stepper_for(
        self, params: DreamParams, tile: int | None, guided: bool = False
    ) -> GradientAscent:
        """The compiled loop for `params`' kinds of term: which layers, channel layers
        and whether there is a target decide the graph; the weights, channels and
        the target class are inputs (`_weights`), so changing them does not retrace."""
        return self._stepper(
            tuple(params.active_layers()),
            tile,
            tuple(params.active_channels()),
            params.target_class() is not None,
            params.lap_levels,
            params.transformed,
            guided,
        )

    def _weights(self, params: DreamParams) -> Objective:
        """The objective's weights as the tensors the compiled loop takes."""
        layers = params.active_layers()
        channels = params.active_channels()
        target = params.target_class()
        vectors = []
        for layer, chosen in channels.items():
            vector = np.zeros(self.spec.width(layer), np.float32)
            vector[list(chosen)] = list(chosen.values())
            vectors.append(vector)
        return Objective(
            tf.constant(list(layers.values()), tf.float32),
            tf.constant(np.concatenate(vectors) if vectors else np.zeros(0, np.float32)),
            tf.constant(target[0] if target else 0),
            tf.constant(params.target_weight if target else 0.0, tf.float32),
        )

    def _class_head(self) -> tuple[tf.Variable, tf.Variable]:
        """The classifier's dense layer, loaded on first use (a download, for ImageNet)."""
        if self._head is None:
            kernel, bias = load_head(self.spec.name, self.weights, self.seed, self.head_weights)
            features = self.backbone.output.shape[-1]
            if kernel.shape[0] != features:
                raise ModelUnavailableError(
                    f"The class head has {kernel.shape[0]} inputs, but {self.spec.name} gives "
                    f"{features} features: is it {self.spec.name}'s with-classifier file?"
                )
            self._head = (tf.Variable(kernel, trainable=False), tf.Variable(bias, trainable=False))
        return self._head

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
        size = working_size((width, height), max_side, self.spec.min_side)
        to, needs = (
            f"{size[0]}x{size[1]}",
            f"{self.spec.name} needs at least {self.spec.min_side} px",
        )
        if size[0] > width:
            notes.append(f"upscaled from {width}x{height} to {to}: {needs}")
        elif max_side is not None and max(size) > max_side:  # the model's minimum won
            fitted = "kept at" if size == (width, height) else f"scaled from {width}x{height} to"
            notes.append(f"{fitted} {to}, not fitted to {max_side} px: {needs}")
        elif size != (width, height):
            notes.append(f"scaled down from {width}x{height} to {to}")
        if size != (width, height):
            # One resize from the upload: a strip shrunk to `max_side` first and then
            # enlarged to the model's minimum would be rebuilt from a few rows.
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image, notes

    def _stepper(
        self,
        layers: tuple[str, ...],
        tile_size: int | None,
        channel_layers: tuple[str, ...] = (),
        target: bool = False,
        lap_levels: int = 0,
        transformed: bool = False,
        guided: bool = False,
    ) -> GradientAscent:
        """One compiled loop per objective structure (a guide included), tile size,
        Laplacian level count and whether the view is transformed, least recently used out."""
        key = (layers, channel_layers, target, tile_size, lap_levels, transformed, guided)
        if key in self._steppers:
            self._steppers.move_to_end(key)
            return self._steppers[key]
        import keras

        head_input = self.backbone.layers[-1].name  # the classifier pools the last feature map
        names = list(dict.fromkeys((*layers, *channel_layers, *([head_input] if target else []))))
        outputs = [self.backbone.get_layer(name).output for name in names]
        # Keras keeps only the layers these outputs need: the extractor stops at the
        # deepest weighted layer, so unused upper layers cost nothing.
        extractor = keras.Model(self.backbone.input, outputs)
        terms = Terms(
            squared=tuple(names.index(name) for name in layers),
            channels=tuple((names.index(name), self.spec.width(name)) for name in channel_layers),
            head=names.index(head_input) if target else None,
            guided=guided,
        )
        stepper = GradientAscent(
            extractor,
            terms,
            self._class_head() if target else None,
            self.spec.input_from_unit,
            self._count_trace,
            tile_size=tile_size,
            loss_scale=FLOAT16_LOSS_SCALE if self.precision == "mixed_float16" else 1.0,
            lap_levels=lap_levels,
            transformed=transformed,
        )
        self._steppers[key] = stepper
        while len(self._steppers) > STEPPER_CACHE_SIZE:
            self._steppers.popitem(last=False)
        return stepper

    def _count_trace(self) -> None:
        self.trace_count += 1


def frame_limit(size: tuple[int, int]) -> int:
    """Frames one dream may keep at `size` (the photo included): `MAX_FRAMES`, fewer
    when they would take more than about `FRAME_MEMORY_BYTES`."""
    return max(2, min(MAX_FRAMES, FRAME_MEMORY_BYTES // (3 * size[0] * size[1])))


def plan_frames(
    frame_every: int | None,
    octaves: int,
    iterations: int,
    size: tuple[int, int],
    notes: list[str],
) -> int | None:
    """Steps between animation frames: `frame_every`, raised if it would keep too many.

    A dream keeps the photo, a frame every `frame_every` steps of each octave and
    each octave's end, all at the final size, so about
    `1 + octaves * iterations / frame_every` frames; at most `frame_limit(size)`.
    With more octaves than that, only the last octaves' ends are kept (`_Frames`).
    Adds a note when it had to space them out or leave some out.
    """
    if not frame_every:
        return None
    limit = frame_limit(size)
    per_octave = max(1, (limit - 1) // octaves)
    every = max(frame_every, math.ceil(iterations / per_octave))
    at_most = f"at most {limit} frames at {size[0]}x{size[1]}"
    if octaves + 1 > limit:
        notes.append(f"frames of the last {limit - 1} of {octaves} octaves only: {at_most}")
    elif every > frame_every:
        notes.append(f"a frame every {every} steps, not {frame_every}: {at_most}")
    return every


class _Frames:
    """The animation's frames at the final size, the photo first, never more than `limit`:
    past it, the earliest after the photo gives way, so memory stays within budget."""

    def __init__(self, photo: Image.Image, limit: int) -> None:
        self.kept = [photo.copy()]
        self._limit = limit

    def add(self, frame: Image.Image) -> None:
        self.kept.append(frame.resize(self.kept[0].size, Image.Resampling.BICUBIC))
        if len(self.kept) > self._limit:
            del self.kept[1]


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
