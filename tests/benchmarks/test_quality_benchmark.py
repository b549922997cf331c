"""`benchmarks/quality.py`: its grain measure reads what it claims, and `--quick` runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.quality import VARIANTS, high_frequency_share
from benchmarks.quality import main as run_benchmark

GREY = Image.new("RGB", (128, 96), (128, 128, 128))


def changed_by(change: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(128 + change, 0, 255).astype(np.uint8), "RGB")


def test_pixel_noise_is_mostly_high_frequency_and_a_broad_wave_is_not():
    noise = np.random.default_rng(0).normal(0, 20, (96, 128, 3))
    # White noise spreads its power evenly: the band above 1/4 cycle holds 1 - pi/16 of it.
    assert high_frequency_share(GREY, changed_by(noise)) == pytest.approx(1 - np.pi / 16, abs=0.03)
    _, x = np.mgrid[0:96, 0:128]
    wave = 40 * np.sin(2 * np.pi * x / 32)[..., None] * np.ones(3)
    assert high_frequency_share(GREY, changed_by(wave)) < 0.01
    assert high_frequency_share(GREY, changed_by(np.full((96, 128, 3), 30.0))) == 0.0  # a tint


@pytest.mark.slow  # builds the dogs model (in this process: one process start less)
def test_quick_run_prints_every_variant(capsys):
    run_benchmark(["--quick"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["variant"] for record in records] == list(VARIANTS)
    for record in records:
        assert record["objective"] > 0 and 0 <= record["high_frequency_share"] <= 1
        assert record["s_per_dream"] > 0
