"""The executor seam: where a dream runs, off the bot's event loop.

`LocalExecutor` runs the engine on one dedicated thread of this process (the
engine is built there once, at start-up, so the first dream pays no build).
TensorFlow releases the GIL while it computes, so gateway heartbeats keep
flowing. Anything above this seam sees only `submit(request, on_progress,
cancel)` returning a `DreamResult` or raising a typed failure, so a
process-isolated or remote (Ray) executor can replace it without the bot
noticing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dream_engine.core.params import DEFAULT_TILE_SIZE, DreamParams
from dream_engine.errors import DreamCancelled, UserError

if TYPE_CHECKING:
    from PIL import Image

    from dream_engine.core.engine import CancelFlag, DreamEngine
    from dream_engine.core.results import DreamResult, Progress
    from dream_engine.study.sweeps import Variant

log = logging.getLogger(__name__)


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
    from dream_engine.core.results import DreamResult
    from dream_engine.study.sweeps import run_sweep

    if not request.variants:
        retry = {} if tile_size is None else {"tile_size": tile_size}
        return engine.dream(
            request.image,
            request.params,
            on_progress=on_progress,
            cancel=cancel,
            max_side=max_side,
            frame_every=request.frame_every,
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


class DreamFailed(Exception):
    """The engine failed for a reason that is not the user's; the message is for them."""


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
    precision: str = "float32"
    tile_size: int | None = DEFAULT_TILE_SIZE
    warm_up: DreamParams | None = None  # traced at start-up, before any user waits
    head_weights: str | None = None  # with-classifier file for targets (DREAM_HEAD_WEIGHTS)

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
            tile_size=self.tile_size,
            head_weights=self.head_weights,
        )
        if self.warm_up is not None:
            engine.warm_up(self.warm_up)
        return engine


class LocalExecutor:
    """One engine on one worker thread of this process."""

    capacity = 1
    on_capacity_change: Callable[[], None] | None = None  # never called: capacity stays 1

    def __init__(self, config: EngineConfig) -> None:
        self.model_name = config.model
        self._config = config
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dream-engine")
        self._engine: DreamEngine | None = None
        self._jobs_done = 0
        self._in_hand: str | None = None

    def workers(self) -> list[WorkerStatus]:
        return [
            WorkerStatus(
                "engine thread", local_host(), "this process", self._jobs_done, self._in_hand,
                "ready" if self._engine is not None else "starting",
            )
        ]  # fmt: skip

    async def start(self) -> None:
        """Build the engine (and its first graph) before the bot takes jobs."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._build)

    def _build(self) -> None:
        self._engine = self._config.build()

    async def submit(
        self,
        request: DreamRequest,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult:
        loop = asyncio.get_running_loop()

        def report(progress: Progress) -> None:  # engine thread -> event loop
            loop.call_soon_threadsafe(on_progress, progress)

        def work() -> DreamResult:
            assert self._engine is not None, "start() the executor first"
            return run_request(self._engine, request, report, cancel, max_side=request.max_side)

        future = loop.run_in_executor(self._pool, work)
        self._in_hand = request.label or "a dream"
        try:
            result = await asyncio.shield(future)
            self._jobs_done += 1
            return result
        except asyncio.CancelledError:
            cancel.set()  # the awaiting task went away: stop the engine at its next check
            raise
        except (UserError, DreamCancelled):
            raise
        except Exception as error:
            log.exception("dream failed")
            raise DreamFailed(
                f"The dream engine failed ({type(error).__name__}). Nothing was lost on your "
                "side; try again, maybe with a smaller image."
            ) from error
        finally:
            self._in_hand = None

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def local_host() -> str:
    """This machine's name, for the worker list."""
    import socket

    return socket.gethostname()
