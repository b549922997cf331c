"""`benchmarks/flicker.py`: its measures read what they claim, and `--quick` runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.flicker import BLENDS, camera_move, change, flicker, strength
from benchmarks.flicker import main as run_benchmark


def test_a_pattern_that_moves_with_the_picture_does_not_flicker_and_new_ones_do():
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    photo = Image.fromarray(coarse).resize((320, 192), Image.Resampling.BICUBIC)
    inputs = [photo.crop((6 * i, 16, 6 * i + 160, 136)) for i in range(5)]
    spot = np.zeros((192, 320, 3), np.float32)
    spot[60:80, 100:130] = 80
    stuck = [  # a dream whose pattern sits on the picture: it moves with it
        Image.fromarray(np.clip(np.asarray(photo, np.float32) + spot, 0, 255).astype(np.uint8))
        .crop((6 * i, 16, 6 * i + 160, 136)) for i in range(5)
    ]  # fmt: skip
    noise = [  # a fresh pattern every frame
        Image.fromarray(np.clip(np.asarray(frame, np.float32) + rng.normal(0, 20, (120, 160, 3)),
                                0, 255).astype(np.uint8)) for frame in inputs
    ]  # fmt: skip
    assert flicker(stuck, inputs) < flicker(inputs, inputs) + 1.5
    assert flicker(noise, inputs) > flicker(inputs, inputs) + 10
    assert change(inputs) > flicker(inputs, inputs)  # the camera's own move is taken out
    assert strength(inputs, inputs) == 0 and strength(noise, inputs) > 10


def test_the_camera_moves_smoothly_at_the_size_asked():
    views = camera_move(Image.new("RGB", (451, 300), "teal"), 6, (120, 80))
    assert len(views) == 6 and {view.size for view in views} == {(120, 80)}


@pytest.mark.slow  # builds the dogs model (in this process: one process start less)
def test_quick_run_prints_the_input_and_every_blend(capsys):
    run_benchmark(["--quick"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["case"] == "input"
    assert [record["blend"] for record in records[1:]] == list(BLENDS)
    assert all(record["strength"] > 0 and record["flicker"] > 0 for record in records[1:])
