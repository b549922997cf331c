"""Does a reduced precision change the dream? And do sized thread pools pay in a small box?

    python -m benchmarks.precision [--quick] [--pair docs/precision-dogs.jpg] [--threads]

Gradient ascent is chaotic pixel by pixel: an input off by one level in 255 already
moves a float32 dream. So a precision is judged against that chaos, not against zero:

- `precision_vs_float32`: the mean difference (0-255 levels) between the dream in the
  reduced precision and in float32, both compared at 1/8 size (what the eye sees);
- `twin_vs_float32`: the same between float32 and float32 from the input nudged by
  +-1/255 (the chaos every dream already has);
- `float32_vs_input`: how far the dream moved at all (the scale of the other two);
- the objective (final loss) of each, and their relative difference.

`--pair PATH` writes the float32 and bfloat16 dreams of the dogs model (real weights,
Chelsea the cat) side by side for a person to look at. `--threads` times a steady step
in a child process limited to one CPU (a real cgroup quota where this user may make one,
as a container's would be; else CPU affinity), with the pools sized from that CPU and
with the host's core count, to show what sizing saves.
Prints one JSON line per measurement; figures are read by people, never asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
FLOAT32, BFLOAT16 = "float32", "mixed_bfloat16"


def coarse_difference(a: Image.Image, b: Image.Image, factor: int = 8) -> float:
    """Mean absolute difference in 0-255 levels at 1/`factor` size: pixel-level chaos
    averages out there, while a changed structure (a new eye, a lost colour) does not."""
    size = (max(1, a.width // factor), max(1, a.height // factor))
    small_a = np.asarray(a.resize(size, Image.Resampling.BOX), dtype=np.float32)
    small_b = np.asarray(b.resize(size, Image.Resampling.BOX), dtype=np.float32)
    return float(np.mean(np.abs(small_a - small_b)))


def nudged(image: Image.Image, seed: int) -> Image.Image:
    """The image with every channel moved by -1, 0 or +1 level at random."""
    pixels = np.asarray(image, dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-1, 2, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


def chelsea(size: tuple[int, int]) -> Image.Image:
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "pip install scikit-image"
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "chelsea.png"
    with Image.open(path) as image:
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def compare(
    model: str, weights: str, preset: str, size: tuple[int, int], iterations: int, seed: int
) -> tuple[dict[str, Any], dict[str, Image.Image]]:
    """The chaos-relative figures for one model, and the dreams they were read from."""
    from dream_engine import DreamEngine, load_preset

    params = load_preset(preset).replace(iterations=iterations)
    photo = chelsea(size)
    dreams: dict[str, Image.Image] = {}
    losses: dict[str, float] = {}
    for precision in (FLOAT32, BFLOAT16):
        engine = DreamEngine(model, weights=weights, seed=seed, precision=precision)
        result = engine.dream(photo, params)
        dreams[precision], losses[precision] = result.image, result.losses[-1][-1]
        if precision == FLOAT32:
            dreams["twin"] = engine.dream(nudged(photo, seed), params).image
    record = {
        "case": "precision_quality",
        "model": model,
        "size": f"{size[0]}x{size[1]}",
        "seed": seed,
        "precision_vs_float32": round(coarse_difference(dreams[BFLOAT16], dreams[FLOAT32]), 3),
        "twin_vs_float32": round(coarse_difference(dreams["twin"], dreams[FLOAT32]), 3),
        "float32_vs_input": round(coarse_difference(dreams[FLOAT32], photo), 3),
        "loss_float32": round(losses[FLOAT32], 4),
        "loss_bfloat16": round(losses[BFLOAT16], 4),
        "loss_relative_difference": round(abs(losses[BFLOAT16] / losses[FLOAT32] - 1), 4),
    }
    return record, {"input": photo, **dreams}


def side_by_side(images: dict[str, Image.Image], captions: dict[str, str]) -> Image.Image:
    """The named images in a row, each with its caption underneath."""
    picked = [(images[name], captions[name]) for name in captions]
    width, height = picked[0][0].size
    sheet = Image.new("RGB", (width * len(picked), height + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (image, caption) in enumerate(picked):
        sheet.paste(image, (index * width, 0))
        draw.text((index * width + 6, height + 6), caption, fill="black")
    return sheet


def one_cpu_cgroup() -> Path | None:
    """A cgroup capped at one CPU's worth (v2 `cpu.max` or v1 `cpu.cfs_quota_us`), made
    here where this process may (root, a writable cgroup mount); None elsewhere."""
    for top, files in (
        (Path("/sys/fs/cgroup"), {"cpu.max": "100000 100000"}),
        (Path("/sys/fs/cgroup/cpu"), {"cpu.cfs_quota_us": "100000", "cpu.cfs_period_us": "100000"}),
    ):
        if not (top / next(iter(files))).exists() and not (top / "cgroup.procs").exists():
            continue
        folder = top / "dream-benchmark-one-cpu"
        try:
            folder.mkdir(exist_ok=True)
            for name, value in files.items():
                (folder / name).write_text(value)
        except OSError:
            continue
        return folder
    return None


def time_threads(
    threads: int | None, steps: int, size: tuple[int, int], cgroup: Path | None
) -> dict[str, Any]:
    """A steady step in a child process given one CPU, its pools sized by `threads`.

    The CPU is a real cgroup quota where one can be made (`cgroup`), as a container's
    would be; else the child is pinned to one CPU by affinity."""
    pin = "" if cgroup else "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})"
    script = f"""
import os, time, json
{pin}
import numpy as np
from PIL import Image
from dream_engine import DreamEngine, load_preset
engine = DreamEngine("inceptionv3", weights="random", precision="float32", threads={threads})
params = load_preset("balanced").replace(octaves=1, max_loss=1e6)
image = Image.fromarray(np.random.default_rng(0).integers(0, 256, ({size[1]}, {size[0]}, 3),
                        dtype=np.uint8))
engine.dream(image, params.replace(iterations=1))
rounds = []
for _ in range(3):
    started = time.perf_counter()
    engine.dream(image, params.replace(iterations={steps}))
    rounds.append((time.perf_counter() - started) / {steps})
plan = engine.thread_plan
print(json.dumps({{"s_per_step": round(min(rounds), 4), "intra_op": plan.intra_op,
                  "inter_op": plan.inter_op}}))
"""

    def join_cgroup() -> None:  # in the child, before Python and TensorFlow start
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, preexec_fn=join_cgroup,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model (the spread)")
    parser.add_argument("--pair", type=Path, help="write the dogs model's two dreams here")
    parser.add_argument("--threads", action="store_true", help="also time sized thread pools")
    args = parser.parse_args(argv)
    runs = [("dogs", "imagenet", "dogs-dream", (240, 160) if args.quick else (480, 320), 10)]
    runs.append(("inceptionv3", "random", "balanced", (160, 112) if args.quick else (600, 400), 10))
    for model, weights, preset, size, iterations in runs:
        for seed in range(1 if args.quick else args.seeds):
            record, images = compare(model, weights, preset, size, iterations, seed)
            print(json.dumps(record), flush=True)
            if args.pair and model == "dogs" and seed == 0:
                captions = {"input": "input", FLOAT32: "float32", BFLOAT16: "mixed_bfloat16"}
                args.pair.parent.mkdir(parents=True, exist_ok=True)
                side_by_side(images, captions).save(args.pair, quality=90)
    if args.threads:
        host = os.cpu_count() or 1
        size = (160, 120) if args.quick else (512, 384)
        cgroup = one_cpu_cgroup()
        limit = f"cgroup quota of 1 CPU ({cgroup})" if cgroup else "affinity to 1 CPU"
        for threads in (None, host):
            started = time.perf_counter()
            timing = time_threads(threads, 2 if args.quick else 10, size, cgroup)
            print(json.dumps({
                "case": "threads_in_one_cpu", "threads": threads or "sized", "host_cpus": host,
                "limited_by": limit, "size": f"{size[0]}x{size[1]}", **timing,
                "wall_s": round(time.perf_counter() - started, 1),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
