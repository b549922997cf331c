"""The executor seam: where a dream runs, off the bot's event loop.

Anything above this seam sees only `submit(request, on_progress, cancel)`
returning a `DreamResult` or raising one of the typed failures below, so the
thread (`local.LocalExecutor`), worker-process (`process.ProcessExecutor`) and
Ray (`ray_supervisor.SupervisedRayExecutor`) executors replace one another
without the bot noticing. This module holds only what they all share (the
request, how to build the engine, the failures, `run_request`), so each of them,
the wire format (`wire.py`) and the retry policy (`retry.py`) can import it
without importing one another.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dream_engine.core.params import DEFAULT_TILE_SIZE, DreamParams

if TYPE_CHECKING:
    from PIL import Image

    from dream_engine.core.engine import CancelFlag, DreamEngine
    from dream_engine.core.results import DreamResult, Progress
    from dream_engine.motion.spec import MotionSpec
    from dream_engine.study.sweeps import Variant


@dataclass(frozen=True)
class DreamRequest:
    image: Image.Image
    params: DreamParams
    max_side: int | None = None
    frame_every: int | None = None  # keep animation frames (DreamResult.frames); None: none
    # A comparison: each variant dreamed from the same image, one grid (`DreamResult.panels`).
    variants: tuple[Variant, ...] = ()
    title: str | None = None  # what the comparison is, before what its variants share
    label: str = ""  # what the job is, for the worker list (/dreamadmin status) and the log
    guide: Image.Image | None = None  # steers the dream (and every variant) towards its features
    # A moving dream: a zoom into `image`, or a clip of `clip` (its frames; `image` is the
    # first), resumed after the `done` frames a run before this one finished.
    motion: MotionSpec | None = None
    clip: tuple[Image.Image, ...] = ()
    done: tuple[Image.Image, ...] = ()

    def work(self) -> float:
        """How many plain dreams' time this request may take: a comparison's variants,
        or a moving dream's first frame and its shorter later ones."""
        if self.motion is not None:
            frames = len(self.clip) if self.motion.kind == "clip" else self.motion.frames
            later = self.motion.iterations_after_first(self.params) / self.params.iterations
            return 1 + (frames - 1) * later
        return max(1, len(self.variants))


def run_request(
    engine: DreamEngine,
    request: DreamRequest,
    on_progress: Callable[[Progress], None] | None,
    cancel: CancelFlag,
    *,
    max_side: int | None,
    tile_size: int | None = None,
) -> DreamResult:
    """Run one request on an engine: a dream, or a comparison in one grid.

    Every executor (thread, worker process, Ray) runs requests through here, so
    a comparison is one queued job with one progress bar wherever it runs.
    `max_side` and `tile_size` are the request's unless a retry after running
    out of memory asks for less.
    """
    result = _run(engine, request, on_progress, cancel, max_side=max_side, tile_size=tile_size)
    # Said once here for every executor: the Info button shows what a dream computed in.
    return dataclasses.replace(result, precision=engine.precision)


def _run(
    engine: DreamEngine,
    request: DreamRequest,
    on_progress: Callable[[Progress], None] | None,
    cancel: CancelFlag,
    *,
    max_side: int | None,
    tile_size: int | None,
) -> DreamResult:
    from dream_engine.core.results import DreamResult
    from dream_engine.study.sweeps import run_sweep

    if request.motion is not None:
        from dream_engine.motion.sequences import run_motion

        return run_motion(
            engine, request.motion, request.params, request.clip or (request.image,),
            on_progress=on_progress, cancel=cancel, max_side=max_side, tile_size=tile_size,
            guide=request.guide, done=request.done,
        )  # fmt: skip
    if not request.variants:
        retry = {} if tile_size is None else {"tile_size": tile_size}
        return engine.dream(
            request.image,
            request.params,
            on_progress=on_progress,
            cancel=cancel,
            max_side=max_side,
            frame_every=request.frame_every,
            guide=request.guide,
            **retry,  # type: ignore[arg-type]
        )

    sweep = run_sweep(
        engine,
        request.image,
        request.params,
        request.variants,
        on_progress,
        cancel,
        max_side,
        title=request.title,
        tile_size=tile_size,
        guide=request.guide,
    )
    return DreamResult(
        image=sweep.grid,
        octaves=[],
        losses=[],
        params=request.params,
        seconds=sweep.seconds,
        notes=sweep.notes,
        panels=sweep.images,
    )


# -- the typed failures: what `submit` raises besides `UserError` and `DreamCancelled` ---------
# They live here, at the seam, so that the wire format can re-raise each one on the far side
# of a process or Ray boundary without importing the executor that first raised it.


class DreamFailed(Exception):
    """The engine failed for a reason that is not the user's; the message is for them."""


class DreamOutOfMemory(DreamFailed):
    """Out of memory, and the smaller retry (`retry.run_with_oom_retry`) did not help."""


class WorkerCrashed(DreamFailed):
    """The worker (process or Ray actor) died on this job on each of its tries."""


class DreamTimedOut(DreamFailed):
    """The job ran past the executor's `job_timeout`; its worker was killed and restarted."""

    @classmethod
    def after(cls, limit: float) -> DreamTimedOut:
        """The failure for a job stopped at `limit` seconds; every executor words it so."""
        return cls(
            f"This dream took longer than the {limit:g}-second limit, so it was stopped. "
            "Try a smaller image, fewer octaves or fewer iterations."
        )


class ExecutorUnavailable(Exception):
    """The executor cannot start (its cluster cannot be reached...); one line for the admin."""


@dataclass(frozen=True)
class WorkerStatus:
    """One worker, as `/dreamadmin status` and the log show it."""

    name: str
    host: str  # where it runs: the host name (and Ray node)
    device: str  # "GPU 0", "CPU (4 cores)"
    jobs_done: int
    job: str | None = None  # the job in hand; None: idle
    state: str = "ready"  # ready, starting, restarting, leaving
    precision: str = ""  # what its engine computes in, and why: "mixed_bfloat16 (...)"


class Executor(Protocol):
    """Where dreams run. `capacity` may change while the bot runs (a Ray cluster grows):

    such an executor calls `on_capacity_change()` (set by the dream cog, called on the
    event loop) after each change, and the cog keeps one worker task per unit of
    capacity. `workers()` describes the workers for `/dreamadmin status`.
    """

    model_name: str
    capacity: int  # dreams it can run at once
    on_capacity_change: Callable[[], None] | None

    def workers(self) -> list[WorkerStatus]: ...

    async def start(self) -> None: ...

    async def submit(
        self,
        request: DreamRequest,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class EngineConfig:
    """How to build the engine; every executor takes one (and can ship it to a worker)."""

    model: str
    weights: str = "imagenet"
    seed: int = 0
    precision: str = "auto"  # or a precision to force (see core/hardware.py)
    tile_size: int | None = DEFAULT_TILE_SIZE
    warm_up: DreamParams | None = None  # traced at start-up, before any user waits
    head_weights: str | None = None  # with-classifier file for targets (DREAM_HEAD_WEIGHTS)
    threads: int | None = None  # TensorFlow threads per op; None: the usable CPUs

    def build(self) -> DreamEngine:
        """The engine, warmed up. Checks the weights before TensorFlow loads."""
        from dream_engine.core.models import weights_source

        weights_source(self.model, self.weights)
        from dream_engine.core.engine import DreamEngine

        engine = DreamEngine(
            model=self.model,
            weights=self.weights,
            seed=self.seed,
            precision=self.precision,
            threads=self.threads,
            tile_size=self.tile_size,
            head_weights=self.head_weights,
        )
        if self.warm_up is not None:
            engine.warm_up(self.warm_up)
        return engine


def local_host() -> str:
    """This machine's name, for the worker list."""
    import socket

    return socket.gethostname()


def precision_text(engine: DreamEngine) -> str:
    """What `/dreamadmin status` and the log say of an engine's precision."""
    return f"{engine.precision} ({engine.precision_choice.reason})"
