"""How each knob changes a dream: the objective reached, how much of the change is pixel
noise, and what the knob costs in time.

    python -m benchmarks.quality [--quick] [--size 480x320] [--seed 0]

For a fixed photo (Chelsea, from scikit-image) and seed, the dogs model (real weights)
dreams `dogs-dream` plainly and with each knob (and guided by another photo, coffee),
and prints one JSON line per variant:

- `objective`: the last octave's final loss (what the ascent climbs);
- `high_frequency_share`: the share of the change's power (dream minus input) in the
  highest octave of spatial frequencies, 1/4 to 1/2 cycle per pixel: the fine rainbow
  grain that Laplacian normalisation is meant to remove;
- `s_per_dream`: a second run's time (the first traces the knob's compiled step), and
  its ratio to the plain dream's.

Figures are read by people (docs/presets.md); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "lap_levels=2": {"lap_levels": 2},
    "lap_levels=4": {"lap_levels": 4},
    "lap_levels=4, step/2": {"lap_levels": 4, "step": 0.01},
    "scale_jitter=0.1, rotate_jitter=10": {"scale_jitter": 0.1, "rotate_jitter": 10.0},
    "lap_levels=4, step/2, scale_jitter=0.1, rotate_jitter=10": {
        "lap_levels": 4, "step": 0.01, "scale_jitter": 0.1, "rotate_jitter": 10.0,
    },
    # Its objective adds the guide's match, so it is not comparable with the others'.
    "guide (coffee), guide_weight=3": {"guide_weight": 3.0, "guide": True},
}  # fmt: skip


def high_frequency_share(before: Image.Image, after: Image.Image) -> float:
    """Share of the power of `after - before` at 1/4 to 1/2 cycle per pixel (radially),
    the mean of each channel's own share taken out (a uniform tint is not grain)."""
    change = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    change -= change.mean(axis=(0, 1))
    power = np.abs(np.fft.fft2(change, axes=(0, 1))) ** 2
    fy = np.fft.fftfreq(change.shape[0])[:, None]
    fx = np.fft.fftfreq(change.shape[1])[None, :]
    top = (np.hypot(fy, fx) >= 0.25)[..., None]
    total = power.sum()
    return float((power * top).sum() / total) if total > 0 else 0.0


def sample(name: str, size: tuple[int, int]) -> Image.Image:
    """One of scikit-image's sample photos (chelsea, coffee) at `size`."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "pip install scikit-image"
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.png"
    with Image.open(path) as image:
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small photo, few steps (CI)")
    parser.add_argument("--size", default="480x320", help="WxH of the photo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from dream_engine import DreamEngine, load_preset

    width, height = (int(side) for side in ("160x112" if args.quick else args.size).split("x"))
    photo = sample("chelsea", (width, height))
    coffee = sample("coffee", (width, height))
    base = load_preset("dogs-dream").replace(seed=args.seed)
    if args.quick:
        base = base.replace(octaves=2, iterations=3)
    engine = DreamEngine("dogs", weights="imagenet", seed=args.seed)
    plain_s = None
    for name, variant in VARIANTS.items():
        knobs = dict(variant)
        guide = coffee if knobs.pop("guide", False) else None
        params = base.replace(**knobs)
        # Trace this knob's step first.
        engine.dream(photo, params.replace(octaves=1, iterations=1), guide=guide)
        started = time.perf_counter()
        result = engine.dream(photo, params, guide=guide)
        seconds = time.perf_counter() - started
        plain_s = plain_s or seconds
        record = {
            "case": "quality",
            "variant": name,
            "model": "dogs",
            "size": f"{width}x{height}",
            "seed": args.seed,
            "objective": round(result.losses[-1][-1], 3),
            "high_frequency_share": round(high_frequency_share(photo, result.image), 4),
            "s_per_dream": round(seconds, 3),
            "time_vs_plain": round(seconds / plain_s, 3),
            "precision": engine.precision,
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
