"""The engine's dream step on a GPU without TensorFlow: the same maths in Keras 3 on JAX.

Why it exists: the only GPU machine this project has been lent had no TensorFlow and could
not be given one (its image has CUDA 13 and JAX; TensorFlow 2.21's GPU build is a 573 MB
wheel that wants CUDA 12 libraries, and nothing could be downloaded there). This script
gives the figures that *can* be had there: the same InceptionV3, `balanced` layers, loss
(`sum w * mean(square(act[:, 2:-2, 2:-2, :]))`), gradient normalisation and step, compiled
by XLA per image size, and a big image's step tile by tile with the engine's tile boxes
and margins. It is not the engine (tiles are separate calls, not one loop; no early stop; a
compile per size, not one trace for all) and is not part of `make bench` or CI; README.md's
Benchmark section says what its figures mean.

Run it where JAX sees a GPU, with Keras 3 installed (`pip install keras 'jax[cuda13]'`):
`python benchmarks/gpu_proxy.py` (`--quick` for tiny sizes, which also runs on a CPU;
`--tiles-only` for the biggest size alone, tiled and whole).
One JSON line per case goes to stdout and to `$OUT/proxy.jsonl` (`/tmp` without `OUT`).
"""

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import keras
import numpy as np

LAYERS = {"mixed3": 0.5, "mixed4": 1.0, "mixed5": 1.0, "mixed6": 1.0, "mixed7": 0.5}
QUICK = "--quick" in sys.argv
SIZES = (
    [(160, 160), (200, 176), (480, 400)]
    if QUICK
    else [(256, 256), (512, 384), (1024, 768), (4096, 4096)]
)
TILES = [160, 320] if QUICK else [1024, 2048]  # DREAM_TILE_SIZE values tried on the last size
POLICIES = ["float32", "mixed_bfloat16"]
OUT = os.environ.get("OUT", "/tmp")


def emit(record: dict) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with open(os.path.join(OUT, "proxy.jsonl"), "a") as f:
        f.write(line + "\n")


def time_it(fn, reps: int) -> float:
    fn()  # compile / warm
    start = time.perf_counter()
    for _ in range(reps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / reps


def matmul_peaks() -> None:
    n = 1024 if QUICK else 8192
    key = jax.random.PRNGKey(0)
    for dtype, precision in (
        (jnp.float32, "highest"),
        (jnp.float32, "default"),
        (jnp.bfloat16, "default"),
    ):
        a = jax.random.normal(key, (n, n), dtype)
        b = jax.random.normal(key, (n, n), dtype)
        mm = jax.jit(lambda x, y, p=precision: jnp.dot(x, y, precision=p))
        s = time_it(lambda mm=mm, a=a, b=b: mm(a, b), 3 if QUICK else 20)
        emit(
            {
                "case": "matmul",
                "dtype": jnp.dtype(dtype).name,
                "precision": precision,
                "n": n,
                "tflops": round(2 * n**3 / s / 1e12, 1),
            }
        )


def build(policy: str):
    """The engine's balanced-preset layers on InceptionV3, as a jitted dream step."""
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    base = keras.applications.InceptionV3(weights=None, include_top=False)
    extractor = keras.Model(base.inputs, {n: base.get_layer(n).output for n in LAYERS})
    variables = (
        [v.value for v in extractor.trainable_variables],
        [v.value for v in extractor.non_trainable_variables],
    )

    def loss_fn(img, tv, ntv):
        feats, _ = extractor.stateless_call(tv, ntv, img, training=False)
        loss = jnp.zeros((), jnp.float32)
        for name, weight in LAYERS.items():
            act = feats[name].astype(jnp.float32)
            loss += weight * jnp.mean(jnp.square(act[:, 2:-2, 2:-2, :]))
        return loss

    def step(img, tv, ntv, lr):
        loss, grads = jax.value_and_grad(loss_fn)(img, tv, ntv)
        grads = grads / jnp.maximum(jnp.mean(jnp.abs(grads)), 1e-6)
        return loss, img + lr * grads

    jitted = jax.jit(step)
    return lambda img: jitted(img, *variables, jnp.float32(0.01)), jitted, variables


def step_case(policy: str, stepper, size: tuple[int, int]) -> None:
    run, jitted, variables = stepper
    width, height = size
    img = jax.random.uniform(jax.random.PRNGKey(1), (1, height, width, 3), jnp.float32, -1, 1)
    start = time.perf_counter()
    jitted.lower(img, *variables, jnp.float32(0.01)).compile()  # fills JAX's executable cache
    compile_s = time.perf_counter() - start  # what a new size costs the first time
    start = time.perf_counter()
    loss, out = run(img)
    jax.block_until_ready(out)
    first_s = time.perf_counter() - start
    reps = 3 if QUICK else (10 if width * height > 2_000_000 else 50)
    s = time_it(lambda: run(img)[1], reps)
    stats = jax.devices()[0].memory_stats() or {}
    emit(
        {
            "case": "dream_step",
            "policy": policy,
            "size": f"{width}x{height}",
            "s_per_step": round(s, 6),
            "compile_s": round(compile_s, 2),
            "first_call_s": round(first_s, 2),
            # XLA's cost analysis counts no cuDNN convolution on a GPU, so FLOP rates come
            # from TensorFlow's profile of the same step (README), not from here.
            "peak_gib": round(stats.get("peak_bytes_in_use", 0) / 2**30, 2),
            "loss_finite": bool(np.isfinite(float(loss))),
        }
    )


def dream_case(policy: str, stepper, size: tuple[int, int]) -> None:
    """A `balanced` dream (3 octaves, scale 1.4, 20 steps each), cold then warm."""
    run = stepper[0]
    width, height = size
    shapes = [(round(height / 1.4**i), round(width / 1.4**i)) for i in reversed(range(3))]
    for label in ("cold", "warm"):
        img = jax.random.uniform(jax.random.PRNGKey(2), (1, *shapes[0], 3), jnp.float32, -1, 1)
        start = time.perf_counter()
        for shape in shapes:
            img = jax.image.resize(img, (1, *shape, 3), "bilinear")
            for _ in range(20):
                _, img = run(img)
        jax.block_until_ready(img)
        emit(
            {
                "case": "dream",
                "policy": policy,
                "size": f"{width}x{height}",
                "octaves": [f"{w}x{h}" for h, w in shapes],
                "when": label,
                "s_per_dream": round(time.perf_counter() - start, 3),
            }
        )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def tile_boxes(size: int, tile: int) -> list[tuple[int, int]]:
    """(start, end) of each tile's outer box along one axis, as the engine tiles."""
    count = ceil_div(size, tile)
    length = ceil_div(ceil_div(size, count), 32) * 32  # TILE_ALIGN
    margin = ceil_div(max(tile // 8, 96), 32) * 32 if count > 1 else 0  # the engine's margin
    starts = range(0, size, length)
    return [(max(a - margin, 0), min(a + length + margin, size)) for a in starts]


def tiled_case(policy: str, stepper, size: tuple[int, int], tile: int) -> None:
    """One step of a big image as the engine takes it: tile by tile, each with its margin."""
    run = stepper[0]
    width, height = size
    shapes = [
        (bottom - top, right - left)
        for top, bottom in tile_boxes(height, tile)
        for left, right in tile_boxes(width, tile)
    ]
    images = {
        shape: jax.random.uniform(jax.random.PRNGKey(3), (1, *shape, 3), jnp.float32, -1, 1)
        for shape in set(shapes)
    }
    start = time.perf_counter()
    for img in images.values():
        jax.block_until_ready(run(img)[1])
    compile_s = time.perf_counter() - start

    def tiled_step():
        return [run(images[shape])[1] for shape in shapes]

    s = time_it(tiled_step, 2 if QUICK else 5)
    stats = jax.devices()[0].memory_stats() or {}
    emit(
        {
            "case": "tiled_step",
            "policy": policy,
            "size": f"{width}x{height}",
            "tile": tile,
            "tiles": len(shapes),
            "tile_shapes": sorted(f"{w}x{h}" for h, w in set(shapes)),
            "s_per_step": round(s, 6),
            "compile_s": round(compile_s, 2),
            "peak_gib": round(stats.get("peak_bytes_in_use", 0) / 2**30, 2),
        }
    )


if __name__ == "__main__":
    emit(
        {
            "case": "env",
            "jax": jax.__version__,
            "keras": keras.__version__,
            "device": str(jax.devices()[0]),
            "backend": jax.default_backend(),
        }
    )
    steppers = {policy: build(policy) for policy in POLICIES}
    *small, big = SIZES
    if "--tiles-only" not in sys.argv:  # the tile cases and their untiled baseline alone
        matmul_peaks()
        for policy in POLICIES:
            for size in small:
                step_case(policy, steppers[policy], size)
        for policy in POLICIES:
            dream_case(policy, steppers[policy], small[-1])
    for policy in POLICIES:
        for tile in TILES:
            tiled_case(policy, steppers[policy], big, tile)
    for policy in POLICIES:
        step_case(policy, steppers[policy], big)
