"""The study's kinds of image, made without an upload: what the network adds to what.

The same parameters dream five starting points: a flat grey field (the network's
patterns with nothing to hold on to), static noise (something to latch on to
everywhere), a sharp photo, the same photo blurred (no edges) and pixelated
(downscaled then upscaled: hard edges that are not the subject's). One grid
shows the five inputs over their dreams.

    from dream_engine.study.kinds import run_kinds
    result = run_kinds(engine, load_preset("balanced"))   # result.grid: 2 rows of 5

The photo is `assets/sample.jpg` (Chelsea the cat, CC0, see `assets/NOTICE.txt`)
unless the caller gives one. No TensorFlow is imported here.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter

from dream_engine.core.params import DreamParams
from dream_engine.core.results import Progress
from dream_engine.media.images import fit_within
from dream_engine.study.sweeps import SweepResult, Variant, describe_common, run_jobs

if TYPE_CHECKING:
    from dream_engine.core.engine import CancelFlag, DreamEngine

KINDS = ("blank", "static", "sharp photo", "blurred photo", "low resolution")
BLANK_GREY = (128, 128, 128)  # the middle of the range: the network's own patterns, unbiased
BLUR_SHARE = 1 / 90  # Gaussian radius as a share of the longest side: edges gone, shapes kept
LOW_RES_FACTOR = 8  # the pixelated photo has 1/8 of the resolution in each direction


def sample_photo() -> Image.Image:
    """The photo shipped with the package (451x300), as RGB."""
    data = (resources.files("dream_engine.study") / "assets" / "sample.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def kind_images(photo: Image.Image | None = None, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """The five starting points, all the photo's size: (kind, image) in `KINDS` order.

    `seed` fixes the static, so the same call always gives the same images.
    """
    sharp = (photo if photo is not None else sample_photo()).convert("RGB")
    width, height = sharp.size
    blank = Image.new("RGB", sharp.size, BLANK_GREY)
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    static = Image.fromarray(noise, "RGB")
    blurred = sharp.filter(ImageFilter.GaussianBlur(radius=max(1.0, max(sharp.size) * BLUR_SHARE)))
    small = (max(1, width // LOW_RES_FACTOR), max(1, height // LOW_RES_FACTOR))
    low = sharp.resize(small, Image.Resampling.BOX).resize(sharp.size, Image.Resampling.NEAREST)
    return list(zip(KINDS, (blank, static, sharp, blurred, low), strict=True))


def run_kinds(
    engine: DreamEngine,
    params: DreamParams,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelFlag = None,
    max_side: int | None = None,
    *,
    photo: Image.Image | None = None,
    seed: int = 0,
    title: str | None = None,
    guide: Image.Image | None = None,
) -> SweepResult:
    """Dream every kind with `params` on `engine`: one grid, inputs above their dreams.

    Progress is one bar over the five dreams (see `sweeps.run_sweep`).
    """
    if photo is None:
        photo = sample_photo()
    if max_side is not None:
        photo = fit_within(photo.convert("RGB"), max_side)
    images = kind_images(photo, seed)
    variants = [Variant(kind, params) for kind, _ in images]
    return run_jobs(
        engine,
        [(image, variant) for (_, image), variant in zip(images, variants, strict=True)],
        inputs=[(f"{kind} (input)", image) for kind, image in images],
        title=(
            f"kinds of image; {describe_common(variants, guide is not None)}"
            if title is None
            else title
        ),
        columns=len(KINDS),
        on_progress=on_progress,
        cancel=cancel,
        max_side=max_side,
        guide=guide,
    )
