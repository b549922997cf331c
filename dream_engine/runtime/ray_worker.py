"""`DreamWorker`: the Ray actor, what runs on a cluster node: one engine, one job at a time.

Its own module, apart from the executor that places and supervises it (`ray_cluster.py`):
it runs in another process, often on another machine, where Ray imports this module by
name to build the actor, so it carries only what a node needs: the engine and the wire.

- `DreamWorker` (an actor, `num_gpus=1`, or `num_cpus=worker_cpus` on CPU-only
  clusters) builds the engine once and dreams job after job through the same
  `wire.run_job` as the local worker process: image in and images out as PNG
  bytes, out-of-memory retried once smaller (`retry.py`), failures as plain data.
- Progress: `begin(job_id, job)` starts the dream on a thread of the actor and
  returns; the executor then long-polls `events(job_id)`, which returns as soon as
  the engine reports (at most `wait` s later) with everything reported since,
  in order, the outcome last. One caller reads one queue, so order is kept; a
  dead actor fails the pending call (`RayActorError`), so a crash is seen at
  once; and it is plain actor calls, which work the same through Ray Client
  (`ray://`), where streaming generators do not (tried: Ray 2.60 hands back a
  plain ref). A backlog is thinned to each octave's last event and the latest.
- Cancel: the actor runs two calls at once (`max_concurrency=2`: `events`, and
  `cancel(job_id)`, which sets the `threading.Event` the engine checks every
  step). The job id keeps a late cancel from stopping the next job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
from typing import TYPE_CHECKING, Any

import ray

from dream_engine.runtime.executor import precision_text
from dream_engine.runtime.wire import Done, Failed, Job, ProgressEvent, run_job

if TYPE_CHECKING:
    from dream_engine.runtime.executor import EngineConfig


class DreamWorker:
    """One engine on one GPU (or `worker_cpus` CPUs) of the cluster; one job at a time."""

    def __init__(self, config: EngineConfig) -> None:
        logging.basicConfig(level=logging.INFO)
        self._engine = config.build()
        self._cancel = threading.Event()
        self._job_id: str | None = None
        self._jobs_done = 0
        self._running: threading.Thread | None = None
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        gpus = ray.get_gpu_ids()
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
        self._where = {
            "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id()[:8],
            "pid": os.getpid(),
            "device": f"GPU {gpus[0]}" if gpus else f"CPU ({cpus:g} cores)",
            "precision": precision_text(self._engine),
        }

    def info(self) -> dict[str, Any]:
        """Where it runs and how much it did; answering at all means the engine is built."""
        return {**self._where, "jobs_done": self._jobs_done}

    def begin(self, job_id: str, job: Job) -> None:
        """Start `job` on a thread of its own; `events` hands out what it reports."""
        if self._running is not None:  # the last job's thread ends as it hands its outcome
            self._running.join(timeout=10)
            if self._running.is_alive():
                raise RuntimeError("this dream worker still has a job")
        self._job_id = job_id
        self._cancel.clear()
        self._events = events = queue.SimpleQueue()

        def work() -> None:
            outcome = run_job(self._engine, job, self._cancel.is_set, events.put)
            self._jobs_done += 1
            events.put(outcome)

        self._running = threading.Thread(target=work, name=f"dream-{job_id}", daemon=True)
        self._running.start()

    def events(self, job_id: str, wait: float) -> list[ProgressEvent | Done | Failed]:
        """What the job reported since the last call, in order, its outcome last (a long
        poll: waits up to `wait` s for the first item, then takes what is there). Of a run
        of progress events only each octave's last and the latest are kept."""
        if job_id != self._job_id:
            return []
        items: list[Any] = []
        with contextlib.suppress(queue.Empty):
            items.append(self._events.get(timeout=wait))
            while True:
                items.append(self._events.get_nowait())
        return [
            item
            for index, item in enumerate(items)
            if not isinstance(item, ProgressEvent)
            or item.fields["octave_done"]
            or index + 1 == len(items)
            or not isinstance(items[index + 1], ProgressEvent)
        ]

    def cancel(self, job_id: str) -> None:
        """Stop `job_id` at the engine's next check (runs beside `events`)."""
        if self._job_id == job_id:
            self._cancel.set()


__all__ = ["DreamWorker"]
