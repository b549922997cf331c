"""Scale-out benchmark: the same jobs on 1, then 2, Ray CPU workers.

    python -m benchmarks.scaleout [--jobs 8 --side 224 --iterations 20 --workers 1,2]

Starts a local Ray (needs the `ray` extra), then for each worker count runs
`--jobs` dreams (InceptionV3, random weights) the way the bot does: never more
jobs in flight than the executor has ready workers. One warm-up job per worker
first (the graph is traced per image size). Prints one line per worker count:
jobs, seconds, dreams per minute, and the speed-up over the first count.

On a 2-core machine two CPU workers share the same cores (TensorFlow already
uses every core in one process), so the speed-up there says little about a
cluster, where each worker has a GPU or a machine of its own. It is printed,
not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import numpy as np
from PIL import Image

from dream_engine.executor import DreamRequest, EngineConfig
from dream_engine.params import DreamParams


async def run(workers: int, jobs: int, params: DreamParams, side: int) -> float:
    from dream_engine.ray_cluster import RayExecutor

    executor = RayExecutor(
        EngineConfig("inceptionv3", "random"), max_workers=workers, worker_cpus=1
    )
    await executor.start()
    image = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8), "RGB"
    )

    async def dream() -> None:
        await executor.submit(DreamRequest(image, params, side), lambda p: None, threading.Event())

    await asyncio.gather(*(dream() for _ in range(executor.capacity)))  # warm up every worker
    slots = asyncio.Semaphore(executor.capacity)  # as the bot: one job per ready worker

    async def one() -> None:
        async with slots:
            await dream()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    seconds = time.perf_counter() - started
    await executor.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    import ray

    counts = [int(n) for n in args.workers.split(",")]
    ray.init(num_cpus=max(counts), include_dashboard=False, logging_level="ERROR")
    params = DreamParams(layers={"mixed3": 1.0}, octaves=2, iterations=args.iterations)
    base = None
    for workers in counts:
        seconds = asyncio.run(run(workers, args.jobs, params, args.side))
        rate = args.jobs / seconds * 60
        base = base or rate
        print(
            f"{workers} worker(s): {args.jobs} jobs in {seconds:.1f} s, "
            f"{rate:.1f} dreams/min, x{rate / base:.2f}"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
