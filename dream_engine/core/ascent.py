"""The inner step of a dream: normalised gradient ascent, compiled once.

`GradientAscent` is one `tf.function` with an input signature of unknown height
and width, so a new image size never retraces. It is built in one of two forms,
chosen per octave by the engine from the image's size (see `tiles_needed`):
untiled, the gradient of the whole image in one pass; tiled, the gradient
computed tile by tile in an in-graph loop so that memory depends on the tile,
not the image. The untiled form is the common one (every image within the tile
size) and pays nothing for tiling: no loop, no padding, no placement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from dream_engine.core.laplacian import laplacian_normalize
from dream_engine.core.tiling import tile_layout, tile_margin
from dream_engine.core.transforms import random_view


@dataclass(frozen=True)
class Terms:
    """Which extractor output each kind of objective term reads; fixed per compiled loop."""

    squared: tuple[int, ...]  # one per layer weight, in order: mean(act**2)
    channels: tuple[tuple[int, int], ...]  # (output, width) per slice of the channel vector
    head: int | None  # the feature map the class head pools; None without a target
    guided: bool = False  # each weighted layer also matches a guide image's features


class Objective(NamedTuple):
    """The objective's weights as graph inputs (their structure is in `Terms`)."""

    layer_weights: tf.Tensor
    channel_weights: tf.Tensor
    target: tf.Tensor
    target_weight: tf.Tensor
    guide_weight: tf.Tensor | float = 0.0
    guides: tuple[tf.Tensor, ...] = ()  # per weighted layer: the guide's features, [N, C]


class GradientAscent:
    """A step of normalised gradient ascent on the weighted objective, compiled once."""

    def __init__(
        self,
        extractor: object,
        terms: Terms,
        head: tuple[tf.Variable, tf.Variable] | None,
        input_from_unit: Callable[[tf.Tensor], tf.Tensor] | None,
        on_trace: Callable[[], None],
        tile_size: int | None,
        loss_scale: float = 1.0,
        lap_levels: int = 0,
        transformed: bool = False,
    ) -> None:
        self._extractor = extractor
        self._terms = terms
        self._head = head
        self._input_from_unit = input_from_unit
        self._on_trace = on_trace
        self._tile_size = tile_size
        self._margin = tile_margin(tile_size)
        self._loss_scale = loss_scale
        self._lap_levels = lap_levels  # Laplacian bands normalised apart (0: off)
        self._transformed = transformed  # the network sees a random scale and rotation
        # Which parts the objective has: activation terms, a class logit.
        self._parts = (bool(terms.squared or terms.channels), terms.head is not None)
        guide_specs = tuple(
            tf.TensorSpec([None, width], tf.float32) for width in self._guide_widths()
        )
        self._run = tf.function(
            self._step,
            input_signature=[
                tf.TensorSpec([None, None, 3], tf.float32),  # image in [-1, 1]
                tf.TensorSpec([], tf.float32),  # step size
                tf.TensorSpec([None], tf.float32),  # layer weights
                tf.TensorSpec([None], tf.float32),  # channel weights, the layers' concatenated
                tf.TensorSpec([], tf.int32),  # target class
                tf.TensorSpec([], tf.float32),  # target weight
                tf.TensorSpec([], tf.int32),  # jitter (max roll in px)
                tf.TensorSpec([2], tf.int32),  # seed for the roll (and the view)
                tf.TensorSpec([], tf.float32),  # scale jitter (0.05: 0.95..1.05)
                tf.TensorSpec([], tf.float32),  # rotation jitter, degrees either way
                tf.TensorSpec([], tf.float32),  # guide weight
                guide_specs,  # the guide's features per weighted layer (none unguided)
            ],
        )

    def _guide_widths(self) -> list[int]:
        """Channels of each weighted layer's output, when guided (the guides' widths)."""
        if not self._terms.guided:
            return []
        outputs = self._extractor.outputs
        return [int(outputs[k].shape[-1]) for k in self._terms.squared]

    def __call__(
        self,
        img: tf.Tensor,
        step: tf.Tensor,
        objective: Objective,
        jitter: tf.Tensor,
        seed: tf.Tensor,
        scale_jitter: tf.Tensor,
        rotate_jitter: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        layer_weights, channel_weights, target, target_weight, guide_weight, guides = objective
        return self._run(
            img, step, layer_weights, channel_weights, target, target_weight, jitter, seed,
            scale_jitter, rotate_jitter, tf.constant(guide_weight, tf.float32), tuple(guides),
        )  # fmt: skip

    def guide_features(self, guide: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """A guide image's ([H, W, 3] in [-1, 1]) features at each weighted layer, flattened
        to [positions, channels] in float32: computed once per dream, then graph inputs."""
        outputs = self._outputs(guide)
        return tuple(
            tf.reshape(tf.cast(trim_border(outputs[k]), tf.float32), [-1, outputs[k].shape[-1]])
            for k in self._terms.squared
        )

    def _outputs(self, img: tf.Tensor) -> Sequence[tf.Tensor]:
        """The extractor's feature maps for one image ([H, W, 3] in [-1, 1])."""
        batch = img[tf.newaxis]
        if self._input_from_unit is not None:
            batch = self._input_from_unit(batch)
        outputs = self._extractor(batch, training=False)
        return outputs if isinstance(outputs, Sequence) else [outputs]

    def _loss(
        self, img: tf.Tensor, objective: Objective
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(activation terms, target logit, guide match) of one image or tile."""
        outputs = self._outputs(img)
        # Mixed precision: sum in float32.
        trimmed = [tf.cast(trim_border(output), tf.float32) for output in outputs]
        total, guided = tf.constant(0.0), tf.constant(0.0)
        for k, output in enumerate(self._terms.squared):
            total += objective.layer_weights[k] * tf.reduce_mean(tf.square(trimmed[output]))
            if self._terms.guided:
                guided += objective.guide_weight * objective.layer_weights[k] * guide_match(
                    trimmed[output], objective.guides[k]
                )
        offset = 0
        for output, width in self._terms.channels:
            vector = objective.channel_weights[offset : offset + width]
            total += tf.reduce_mean(tf.tensordot(trimmed[output], vector, 1))
            offset += width
        logit = tf.constant(0.0)
        if self._terms.head is not None and self._head is not None:
            kernel, bias = self._head
            pooled = tf.reduce_mean(tf.cast(outputs[self._terms.head], tf.float32), axis=[0, 1, 2])
            column = tf.gather(kernel, objective.target, axis=1)
            logit = tf.reduce_sum(pooled * column) + tf.gather(bias, objective.target)
        return total, logit, guided

    def _gradients(
        self, img: tf.Tensor, objective: Objective
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The step direction for the whole image, its objective and activation terms.

        The activation terms (layers, channels) and the class logit have scales
        that differ by orders of magnitude and from model to model, so each part's
        gradient is normalised before they are added, `target_weight` times the
        logit's: the weight is then the class's share of each step, the same on
        every model. That costs a second backward pass, only when both are there.
        """
        if self._tile_size is None:
            grads, loss, activation = self._region_gradients(img, objective)
            # Weighted by area as the tiled form weights each tile, so the
            # normalisation's floor acts alike and one tile is exactly this.
            area = tf.cast(tf.shape(img)[0] * tf.shape(img)[1], tf.float32)
            grads *= area
        else:
            grads, loss, activation = self._tiled_gradients(img, objective)
        if sum(self._parts) == 1:
            direction = grads[0]  # the caller normalises it
        else:
            grads /= tf.maximum(tf.reduce_mean(tf.abs(grads), axis=[1, 2, 3], keepdims=True), 1e-6)
            direction = grads[0] + objective.target_weight * grads[1]
        return direction, loss, activation

    def _region_gradients(
        self, region: tf.Tensor, objective: Objective
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Each objective part's gradient over `region` (stacked), its objective and
        activation terms.

        A guide's match climbs with the layer terms (one part, one normalisation) but is
        left out of the activation terms that `max_loss` caps: its scale is the guide's,
        and it would end octaves at once."""
        with tf.GradientTape(persistent=sum(self._parts) > 1) as tape:
            tape.watch(region)
            activation, logit, guided = self._loss(region, objective)
            loss = activation + guided + objective.target_weight * logit
            scaled = [(activation + guided) * self._loss_scale, logit * self._loss_scale]
        grads = [
            tape.gradient(part, region) for part, on in zip(scaled, self._parts, strict=True) if on
        ]
        return tf.stack(grads), loss, activation

    def _tiled_gradients(
        self, img: tf.Tensor, objective: Objective
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """`_region_gradients` of the whole image, computed tile by tile.

        Peak memory then depends on the tile, not the image. Tiles cover every
        pixel and start on the deepest stride's grid; each is seen with a margin of
        context (whose gradient is dropped), so its features are the whole image's.
        Each tile's loss is weighted by its area, so the loss is the image-wide
        mean whatever the tile count, and one tile is exactly the untiled form.

        The class logit is tiled the same way, each tile treated as an image. The
        head is a global average pool then a linear layer, so the logit is a sum
        over feature positions, and a pixel's gradient comes from the positions
        that see it, which its tile and margin produce as the whole image does:
        tiled, the gradient is the whole image's up to a per-tile scale, as for
        the layer terms (the tests check it against the untiled one). Only the
        logit's reported value is rougher, margins being seen twice. Shrinking the
        whole image to one tile instead would change the scale the network sees.
        """
        height, width = tf.shape(img)[0], tf.shape(img)[1]
        (tile_h, rows), (tile_w, cols) = self._tiling(height), self._tiling(width)
        margin = tf.where(rows * cols > 1, self._margin, 0)

        def tile_body(k: tf.Tensor, grads: tf.Tensor, sums: tf.Tensor):
            top, left = (k // cols) * tile_h, (k % cols) * tile_w
            bottom, right = tf.minimum(top + tile_h, height), tf.minimum(left + tile_w, width)
            # The network sees a margin of context around the tile, so its zero
            # padding falls in the margin, whose gradient is dropped.
            outer_top, outer_left = tf.maximum(top - margin, 0), tf.maximum(left - margin, 0)
            outer_bottom = tf.minimum(bottom + margin, height)
            outer_right = tf.minimum(right + margin, width)
            tile = img[outer_top:outer_bottom, outer_left:outer_right]
            tile_grads, loss, activation = self._region_gradients(tile, objective)
            core = tile_grads[
                :, top - outer_top : bottom - outer_top, left - outer_left : right - outer_left
            ]
            area = tf.cast((bottom - top) * (right - left), tf.float32)
            placed = tf.pad(
                core * area, [[0, 0], [top, height - bottom], [left, width - right], [0, 0]]
            )
            return k + 1, grads + placed, sums + tf.stack([loss, activation]) * area

        _, grads, sums = tf.while_loop(
            lambda k, grads, sums: k < rows * cols,
            tile_body,
            (tf.constant(0), tf.zeros([sum(self._parts), height, width, 3]), tf.zeros([2])),
        )
        means = sums / tf.cast(height * width, tf.float32)
        return grads, means[0], means[1]

    def _tiling(self, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(tile length, tile count) along one axis: aligned tiles covering `size`."""
        if self._tile_size is None:
            return size, tf.constant(1)
        return tile_layout(size, self._tile_size)

    def _step(
        self,
        img: tf.Tensor,
        step_size: tf.Tensor,
        layer_weights: tf.Tensor,
        channel_weights: tf.Tensor,
        target: tf.Tensor,
        target_weight: tf.Tensor,
        jitter: tf.Tensor,
        seed: tf.Tensor,
        scale_jitter: tf.Tensor,
        rotate_jitter: tf.Tensor,
        guide_weight: tf.Tensor,
        guides: tuple[tf.Tensor, ...],
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One step: (the new image, its objective, its activation terms).

        One step a call, not a chunk of steps in an in-graph `while_loop`: the
        loop made every step 10-12% slower at float32 (measured at 512x384 on
        InceptionV3) than the same step called on its own, and a call costs well
        under a millisecond. The caller reads the activation terms for the
        `max_loss` stop, as the keras.io loop reads its loss.
        """
        self._on_trace()  # Python side effect: runs once per trace, never per call
        objective = Objective(
            layer_weights, channel_weights, target, target_weight, guide_weight, guides
        )
        (tile_h, rows), (tile_w, cols) = (
            self._tiling(tf.shape(img)[0]),
            self._tiling(tf.shape(img)[1]),
        )
        # Tiles need a random roll each step, or their borders would show as seams.
        roll = tf.where(
            rows * cols > 1, tf.maximum(jitter, tf.minimum(tile_h, tile_w) // 2), jitter
        )
        shift = tf.random.stateless_uniform(
            [2], seed=seed, minval=-roll, maxval=roll + 1, dtype=tf.int32
        )
        rolled = tf.roll(img, shift, axis=[0, 1])
        if self._transformed:
            # The gradient of the network's view, carried back to the image through it.
            with tf.GradientTape() as view_tape:
                view_tape.watch(rolled)
                viewed = random_view(rolled, scale_jitter, rotate_jitter, seed)
            direction, loss, activation = self._gradients(viewed, objective)
            grads = view_tape.gradient(viewed, rolled, output_gradients=direction)
        else:
            grads, loss, activation = self._gradients(rolled, objective)
        grads = laplacian_normalize(grads, self._lap_levels)
        grads /= tf.maximum(tf.reduce_mean(tf.abs(grads)), 1e-6)
        return tf.roll(rolled + step_size * grads, -shift, axis=[0, 1]), loss, activation


def trim_border(activation: tf.Tensor) -> tf.Tensor:
    """Drop 2 px of border (edge artefacts), unless the map is too small to spare them.

    `tf.slice`, not `[...]` indexing: the gradient of a slice is a pad, while a
    strided slice's is a generic kernel that cost 8% of a bfloat16 step.
    """
    height, width = tf.shape(activation)[1], tf.shape(activation)[2]
    border = tf.where(tf.minimum(height, width) > 4, 2, 0)
    return tf.slice(
        activation,
        tf.stack([0, border, border, 0]),
        tf.stack([-1, height - 2 * border, width - 2 * border, -1]),
    )


def guide_match(features: tf.Tensor, guide: tf.Tensor) -> tf.Tensor:
    """google/deepdream's guided objective: at each position, the dot product of the dream's
    features with the guide's best-matching feature vector (the match held fixed, so the
    gradient pulls each position towards it), averaged over positions."""
    flat = tf.reshape(features, [-1, tf.shape(features)[-1]])
    best = tf.argmax(tf.matmul(flat, guide, transpose_b=True), axis=1)
    matched = tf.stop_gradient(tf.gather(guide, best))
    return tf.reduce_mean(tf.reduce_sum(flat * matched, axis=-1))
