"""The bot outlives its Ray cluster's head: a real head (`ray start --head` on 127.0.0.1, in
a temp dir of its own) and a worker node, killed while the bot's executor runs, then started
again.

The bot joins through Ray Client (`ray://`), as in `docker-compose.yml`. While the
head is gone, capacity is 0 (the dream cog tells the waiting members), a job stays
in hand, not failed, and the executor keeps trying; once the head is back, a new
driver joins, workers start, and the job that waited is dreamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")

from dream_engine.executor import EngineConfig
from dream_engine.ray_supervisor import SupervisedRayExecutor
from dream_engine.results import Progress
from tests.test_ray_cluster import WAIT, eventually, request

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RayHead:
    """A Ray head of our own: started with `ray start`, killed by its own process ids only
    (never `ray stop`, which would stop every Ray on the machine)."""

    def __init__(self) -> None:
        self.port, self.client_port = free_port(), free_port()
        self.temp_dir = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # Ray's sockets: short

    def start(self) -> None:
        """As `docker-compose.yml` lays it out: a head without resources for dreams, and a
        worker node (here with 2 CPUs, there with a GPU) that joins it."""
        common = [
            "--node-ip-address=127.0.0.1", "--num-gpus=0", "--disable-usage-stats",
            f"--object-store-memory={100 * 1024 * 1024}",
        ]  # fmt: skip
        for command in (
            [
                "--head", f"--port={self.port}", f"--ray-client-server-port={self.client_port}",
                "--num-cpus=0", "--include-dashboard=false", f"--temp-dir={self.temp_dir}",
            ],
            [f"--address=127.0.0.1:{self.port}", "--num-cpus=2"],
        ):  # fmt: skip
            subprocess.run(
                [str(RAY), "start", *command, *common],
                check=True, capture_output=True, timeout=120,
                env={**os.environ, "RAY_AUTH_MODE": "disabled"},
            )  # fmt: skip

    def kill(self) -> int:
        """SIGKILL the head's processes and all they started (its workers); how many."""
        parents: dict[int, int] = {}
        mine: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
            except (OSError, ValueError, IndexError):
                continue
            if self.temp_dir in command or f"--port={self.client_port}" in command:
                mine.add(int(entry.name))
        grew = True
        while grew:  # and their descendants
            more = {pid for pid, parent in parents.items() if parent in mine} - mine
            mine |= more
            grew = bool(more)
        for pid in mine:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(mine)


@pytest.mark.asyncio(loop_scope="function")
async def test_a_lost_head_leaves_jobs_waiting_and_the_bot_rejoins_when_it_is_back():
    head = RayHead()
    head.start()
    executor = SupervisedRayExecutor(
        EngineConfig("inceptionv3", "random"),
        address=f"ray://127.0.0.1:{head.client_port}",
        worker_cpus=2,
        poll_seconds=1.0,
        reconnect_seconds=1.0,
        health_seconds=1.0,
        connect_timeout=10.0,  # each try while the head is down gives up this soon
    )
    try:
        await asyncio.wait_for(executor.start(), WAIT)
        assert executor.capacity == 1
        seen: list[int] = []
        executor.on_capacity_change = lambda: seen.append(executor.capacity)
        first = await asyncio.wait_for(
            executor.submit(request(), lambda _: None, threading.Event()), WAIT
        )
        assert first.image.size == (160, 120)
        assert executor.workers()[0].jobs_done == 1

        assert head.kill() >= 3  # at least the GCS, the raylet and the Ray Client server
        await eventually(lambda: executor.capacity == 0, timeout=2 * WAIT)
        assert seen == [0]
        assert [worker.state for worker in executor.workers()] == ["unreachable"]

        progress: list[Progress] = []
        waiting = asyncio.ensure_future(
            executor.submit(request(), progress.append, threading.Event())
        )
        tries = executor.drivers_started
        await eventually(lambda: executor.drivers_started >= tries + 2)  # it keeps trying
        assert not waiting.done() and not progress  # in hand, neither failed nor started

        head.start()  # the head is back (a new cluster: the bot's driver joins it anew)
        result = await asyncio.wait_for(waiting, 2 * WAIT)
        assert result.image.size == (160, 120) and len(result.octaves) == 2
        assert progress and progress[-1].octave == 2
        assert executor.capacity == 1 and seen == [0, 1]
        assert executor.workers()[0].state == "ready"
    finally:
        await executor.close()
        head.kill()
