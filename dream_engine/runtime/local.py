"""`LocalExecutor`: the executor seam on one dedicated thread of this process.

The engine is built there once, at start-up, so the first dream pays no build.
TensorFlow releases the GIL while it computes, so gateway heartbeats keep
flowing. Nothing isolates the bot from the engine here (a segfault takes both:
see `process.py`), but out of memory is retried once smaller, as in the other
executors (`retry.run_with_oom_retry`).

Its own module rather than the seam's (`executor.py`): it uses the retry policy,
which itself builds on the seam.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from dream_engine.errors import DreamCancelled, UserError
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamRequest,
    EngineConfig,
    WorkerStatus,
    local_host,
    precision_text,
)
from dream_engine.runtime.retry import run_with_oom_retry

if TYPE_CHECKING:
    from dream_engine.core.engine import DreamEngine
    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)


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
                precision_text(self._engine) if self._engine is not None else "",
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
            return run_with_oom_retry(self._engine, request, report, cancel, request.max_side)

        future = loop.run_in_executor(self._pool, work)
        self._in_hand = request.label or "a dream"
        try:
            result = await asyncio.shield(future)
            self._jobs_done += 1
            return result
        except asyncio.CancelledError:
            cancel.set()  # the awaiting task went away: stop the engine at its next check
            raise
        except (UserError, DreamCancelled, DreamFailed):  # typed already (out of memory)
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


__all__ = ["LocalExecutor"]
