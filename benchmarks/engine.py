"""Engine benchmark: seconds per step, seconds per dream and graph traces by image size.

    python -m benchmarks.engine [--model inceptionv3] [--weights random] [--sizes 256x256,512x384]

Prints one JSON line per case. It is a benchmark, not a test: machines are
noisy, so the figures are read by people (and copied into README.md), never
asserted. Random weights cost the same FLOPs as trained ones, so the default
runs offline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from PIL import Image

DEFAULT_SIZES = "256x256,512x384,1024x768"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(part) for part in size.split("x")) for size in text.split(",")]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="inceptionv3")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="WxH,WxH,...")
    parser.add_argument("--steps", type=int, default=10, help="steps timed per size (steady state)")
    parser.add_argument(
        "--iterations", type=int, default=10, help="iterations per octave per dream"
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from dream_engine import DreamEngine, load_preset

    started = time.perf_counter()
    engine = DreamEngine(model=args.model, weights=args.weights)
    build_seconds = time.perf_counter() - started
    preset = load_preset(args.preset).replace(model=args.model, max_loss=1e6)
    rng = np.random.default_rng(0)
    print(
        json.dumps(
            {
                "case": "setup",
                "model": args.model,
                "build_s": round(build_seconds, 2),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            }
        )
    )
    for width, height in parse_sizes(args.sizes):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
        single = preset.replace(octaves=1, iterations=1)
        traces_before = engine.trace_count
        engine.dream(image, single)  # warm-up: first use of this size
        steady = preset.replace(octaves=1, iterations=args.steps)
        started = time.perf_counter()
        engine.dream(image, steady)
        per_step = (time.perf_counter() - started) / args.steps
        dream = engine.dream(image, preset.replace(iterations=args.iterations))
        print(
            json.dumps(
                {
                    "case": f"{width}x{height}",
                    "s_per_step": round(per_step, 4),
                    "s_per_dream": round(dream.seconds, 2),
                    "octaves": len(dream.octaves),
                    "iterations": args.iterations,
                    "new_traces": engine.trace_count - traces_before,
                    "total_traces": engine.trace_count,
                }
            )
        )


if __name__ == "__main__":
    main()
