"""Progress GIFs: under the byte limit, animated, first and last frames kept."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageSequence

from dream_engine import DreamParams
from dream_engine.media.animation import (
    MIN_FRAMES,
    encode_gif,
    encode_gif_to_fit,
    suggest_frame_every,
)
from tests.conftest import REPO, skimage_photo


@pytest.fixture(scope="module")
def frames() -> list[Image.Image]:
    """40 frames of a photo growing noisier: as hard to compress as a dream."""
    with Image.open(skimage_photo("astronaut.png")) as photo:
        base = np.asarray(photo.convert("RGB").resize((400, 300)), np.float32)
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(np.clip(base + rng.normal(0, i, base.shape), 0, 255).astype(np.uint8))
        for i in range(40)
    ]


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "GIF"
    return image


def test_a_generous_limit_keeps_every_frame_at_full_size(frames):
    data = encode_gif_to_fit(frames, 50 * 2**20)
    gif = opened(data)
    assert gif.is_animated and gif.n_frames == 40
    assert gif.size == (400, 300)
    assert gif.info["loop"] == 0


@pytest.mark.parametrize("limit", [2 * 2**20, 300_000, 60_000])
def test_a_tight_limit_gives_up_frames_then_size_but_stays_animated(frames, limit):
    data = encode_gif_to_fit(frames, limit)
    gif = opened(data)
    assert len(data) <= limit
    assert gif.n_frames >= MIN_FRAMES
    # The last frame is the finished dream (held longest), the first the photo.
    last = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)][-1]
    finished = frames[-1].resize(last.size)
    assert np.abs(np.asarray(last, float) - np.asarray(finished, float)).mean() < 25
    durations = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
    assert durations[-1] > durations[0]


def test_a_limit_nothing_fits_under_says_so(frames):
    with pytest.raises(ValueError, match="does not fit in 500 bytes"):
        encode_gif_to_fit(frames, 500)
    with pytest.raises(ValueError, match="no frames"):
        encode_gif_to_fit([], 10**6)


def test_frames_of_another_size_or_mode_are_fitted_to_the_first():
    odd = [Image.new("RGB", (120, 90), (200, 0, 0)), Image.new("L", (50, 50), 128)]
    gif = opened(encode_gif(odd, max_side=60))
    assert gif.size == (60, 45) and gif.n_frames == 2


def test_frame_spacing_for_a_number_of_frames():
    params = DreamParams(octaves=3, iterations=20)
    assert suggest_frame_every(params, frames=30) == 2
    assert suggest_frame_every(params.replace(iterations=1, octaves=1)) == 1


def test_the_encoder_needs_no_tensorflow():
    code = (
        "import sys; import dream_engine.media.animation; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
