"""How much a dreamed clip flickers, with the last dream carried along the flow and without.

    python -m benchmarks.flicker [--quick] [--frames 16] [--size 240x160] [--write DIR]

The clip is a slow camera move over a photo (Chelsea, from scikit-image: a pan with
a little zoom), so the true motion is known to be smooth. The dogs model (real
weights) dreams it with `dogs-dream`: each frame alone (`blend=0`, every frame
with the preset's full steps: what dreaming the frames one by one gives) and with
the flow blending at a few strengths (later frames at a quarter of the steps). One
JSON line each:

- `change`: the mean frame-to-frame change of the dreamed clip, per pixel and
  channel (0-255), what the eye sees as flicker plus the camera's own motion;
- `flicker`: the same after following the motion: each frame against the one
  before it moved along the input's optical flow, so only what the dream itself
  changed counts (the input's own figure is printed as `input`);
- `strength`: how far the dream is from its input (mean |dream - input|), so a
  lower flicker is not just a weaker dream;
- `s_per_frame`.

`--write DIR` saves each clip as a GIF (docs/clips-dogs-*.gif). Figures are read by
people (docs/motion.md); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.quality import sample

BLENDS = (0.0, 0.5, 0.8)


def camera_move(photo: Image.Image, frames: int, size: tuple[int, int]) -> list[Image.Image]:
    """`frames` views of `photo`, panning right and zooming in a little, at `size`."""
    width, height = photo.size
    views = []
    for index in range(frames):
        t = index / max(1, frames - 1)
        scale = 0.8 - 0.08 * t  # the window's share of the photo: it shrinks, so we zoom in
        w, h = width * scale, height * scale
        left = (width - w) * (0.2 + 0.5 * t)
        top = (height - h) * 0.5
        box = (left, top, left + w, top + h)
        views.append(photo.resize(size, Image.Resampling.LANCZOS, box=box))
    return views


def change(frames: Sequence[Image.Image]) -> float:
    pixels = [np.asarray(frame, np.float32) for frame in frames]
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(pixels)]))


def flicker(frames: Sequence[Image.Image], inputs: Sequence[Image.Image]) -> float:
    """Mean |frame - the frame before, moved along the inputs' optical flow|."""
    from dream_engine.motion.warps import flow_between, follow_flow, to_array

    errors = []
    for index in range(1, len(frames)):
        flow = flow_between(to_array(inputs[index]), to_array(inputs[index - 1]))
        before = follow_flow(to_array(frames[index - 1]), flow)
        errors.append(float(np.abs(to_array(frames[index]) - before).mean()))
    return float(np.mean(errors))


def strength(frames: Sequence[Image.Image], inputs: Sequence[Image.Image]) -> float:
    return float(
        np.mean(
            [
                np.abs(np.asarray(f, np.float32) - np.asarray(i, np.float32)).mean()
                for f, i in zip(frames, inputs, strict=True)
            ]
        )
    )


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few small frames (CI)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="240x160", help="WxH of the clip")
    parser.add_argument("--write", type=Path, help="save each clip as a GIF in this folder")
    args = parser.parse_args(argv)
    from dream_engine import DreamEngine, load_preset
    from dream_engine.media.clip_encoding import encode_clip
    from dream_engine.motion.sequences import run_motion
    from dream_engine.motion.spec import MotionSpec

    width, height = (int(side) for side in ("120x80" if args.quick else args.size).split("x"))
    count = 4 if args.quick else args.frames
    inputs = camera_move(sample("chelsea", (451, 300)), count, (width, height))
    params = load_preset("dogs-dream")
    if args.quick:
        params = params.replace(octaves=2, iterations=4)
    engine = DreamEngine("dogs", weights="imagenet", precision="float32")
    engine.dream(inputs[0], params.replace(iterations=1))  # trace before the clock starts
    print(json.dumps({"case": "input", "change": round(change(inputs), 2),
                      "flicker": round(flicker(inputs, inputs), 2)}), flush=True)  # fmt: skip
    for blend in BLENDS:
        # Alone: every frame with the preset's steps; carried: a quarter of them after the first.
        spec = MotionSpec("clip", blend=blend, fps=12.0, format="gif",
                          frame_iterations=params.iterations if blend == 0 else None)  # fmt: skip
        started = time.perf_counter()
        result = run_motion(engine, spec, params, inputs)
        seconds = time.perf_counter() - started
        record = {
            "case": "clip",
            "blend": blend,
            "frames": count,
            "size": f"{width}x{height}",
            "frame_iterations": spec.iterations_after_first(params),
            "change": round(change(result.frames), 2),
            "flicker": round(flicker(result.frames, inputs), 2),
            "strength": round(strength(result.frames, inputs), 2),
            "s_per_frame": round(seconds / count, 3),
        }
        print(json.dumps(record), flush=True)
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            name = f"clips-dogs-blend-{blend:g}.gif"
            (args.write / name).write_bytes(encode_clip(result.frames, 12.0, "gif", level=2))


if __name__ == "__main__":
    main()
