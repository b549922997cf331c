"""Scale-out benchmark: the same jobs on the local worker process, then 1 and 2 Ray workers.

    python -m benchmarks.scaleout [--jobs 8 --side 256 --iterations 20 --workers 1,2]

Runs `--jobs` dreams (InceptionV3, random weights) the way the bot does, never
more jobs in flight than the executor has ready workers: first on the default
local executor (one supervised worker process), then on a local Ray (needs the
`ray` extra) with each worker count. One warm-up job per worker first. Prints a
JSON line per executor: jobs, seconds, dreams per minute, the speed-up over the
local executor, and for Ray with one worker its overhead per job (dispatch,
image transfer, progress polling, the hop through the bot's Ray driver process)
as a share of a local job's time. Then a line
that models a cluster: dreams per hour for 1, 4 and 16 workers, from one
worker's measured rate less that overhead.

On a 2-core machine two CPU workers share the same cores (TensorFlow already
uses every core in one process), so the speed-up there says little about a
cluster, where each worker has a GPU or a machine of its own. It is printed,
not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from dream_engine.core.params import DreamParams
from dream_engine.runtime.executor import DreamRequest, EngineConfig


async def run(executor: Any, jobs: int, params: DreamParams, side: int) -> Timing:
    """`jobs` dreams on a started executor, as many in flight as it has workers.

    A job's overhead is its wall time in `submit` less the engine's own time
    (`DreamResult.seconds`): dispatch, image transfer and progress, measured per
    job, so it does not drown in the run-to-run noise of the total.
    """
    overheads: list[float] = []
    image = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8), "RGB"
    )

    async def dream() -> float:
        started = time.perf_counter()
        result = await executor.submit(
            DreamRequest(image, params, side), lambda p: None, threading.Event()
        )
        return time.perf_counter() - started - result.seconds

    await asyncio.gather(*(dream() for _ in range(executor.capacity)))  # warm up every worker
    slots = asyncio.Semaphore(executor.capacity)  # as the bot: one job per ready worker

    async def one() -> None:
        async with slots:
            overheads.append(await dream())

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    return Timing(time.perf_counter() - started, statistics.median(overheads))


@dataclass(frozen=True)
class Timing:
    seconds: float  # all jobs, wall clock
    overhead: float  # per job, median: wall time in submit less the engine's time


async def timed(make: Callable[[], Any], jobs: int, params: DreamParams, side: int) -> Timing:
    executor = make()
    await executor.start()
    try:
        return await run(executor, jobs, params, side)
    finally:
        await executor.close()


def local_executor() -> Any:
    from dream_engine.runtime.process import ProcessExecutor

    return ProcessExecutor(EngineConfig("inceptionv3", "random"))


def ray_executor(address: str, workers: int) -> Callable[[], Any]:
    """The bot's Ray executor (Ray in its driver process), joining the local Ray here."""

    def make() -> Any:
        from dream_engine.runtime.ray_supervisor import SupervisedRayExecutor

        config = EngineConfig("inceptionv3", "random")
        return SupervisedRayExecutor(config, address=address, max_workers=workers, worker_cpus=1)

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    import ray

    counts = [int(n) for n in args.workers.split(",")]
    params = DreamParams(layers={"mixed3": 1.0}, octaves=2, iterations=args.iterations)
    local = asyncio.run(timed(local_executor, args.jobs, params, args.side))
    report("local", 1, args.jobs, local, local)
    ray.init(num_cpus=max(counts), include_dashboard=False, logging_level="ERROR")
    address = ray.get_runtime_context().gcs_address
    share = 0.0
    for workers in counts:
        timing = asyncio.run(timed(ray_executor(address, workers), args.jobs, params, args.side))
        report("ray", workers, args.jobs, timing, local)
        if workers == 1:
            share = timing.overhead / (timing.seconds / args.jobs)
    ray.shutdown()
    per_worker = args.jobs / local.seconds * 3600 * (1 - share)
    print(
        json.dumps(
            {
                "model": "dreams per hour = one worker's rate x workers x (1 - Ray's overhead)",
                "ray_overhead_share": round(share, 3),
                "one_worker_per_hour": round(per_worker),
                "cluster_per_hour": {n: round(per_worker * n) for n in (1, 4, 16)},
                "note": "CPU workers here; a GPU worker's rate comes from `make bench` on a GPU",
            }
        )
    )


def report(executor: str, workers: int, jobs: int, timing: Timing, local: Timing) -> None:
    per_job = timing.seconds / jobs
    print(
        json.dumps(
            {
                "executor": executor, "workers": workers, "jobs": jobs,
                "seconds": round(timing.seconds, 1), "dreams_per_min": round(60 / per_job, 1),
                "speedup_vs_local": round(local.seconds / timing.seconds, 2),
                "overhead_per_job_s": round(timing.overhead, 3),
                "overhead_share": round(timing.overhead / per_job, 3),
            }
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
