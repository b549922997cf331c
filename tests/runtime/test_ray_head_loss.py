"""The bot outlives its Ray cluster's head: a real head (`ray start --head` on 127.0.0.1, in
a temp dir of its own) and a worker node, killed while the bot's executor runs, then started
again.

The whole conversation runs through the fake Discord. The bot joins through Ray
Client (`ray://`), as in `docker-compose.yml`. While the head is gone, the bot has
no workers: the dream in hand is kept, not failed, and its member told so; a member
who asks for a dream is told the workers can't be reached and keeps her place;
`/dreamadmin status` says the cluster is unreachable; the bot keeps trying. Once
the head is back, a new driver joins, a worker starts, and both dreams are
delivered.
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
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")

from bot import DreamBot, create_bot
from dream_engine.runtime.executor import ExecutorUnavailable
from tests.bot.test_dream import png, settings_for
from tests.fakediscord import MANAGE_GUILD, FakeDiscord
from tests.runtime.test_ray_cluster import WAIT, eventually

RAY = Path(sys.executable).with_name("ray")
pytestmark = [pytest.mark.ray, pytest.mark.e2e, pytest.mark.slow]


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
        deadline = time.monotonic() + 60  # the Ray Client server starts last
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.client_port)) == 0:
                    return
            assert time.monotonic() < deadline, "the Ray Client server did not start"
            time.sleep(0.2)

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
            if (
                self.temp_dir in command
                or f"--port={self.client_port}" in command  # the Ray Client proxy
                or ("ray.util.client.server" in command and f":{self.port} " in f"{command} ")
            ):  # and the Ray Client server it started for the bot
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


async def join_cluster(bot: DreamBot, tries: int = 3) -> None:
    """Start the bot's executor as compose would: Ray Client's server now and then fails
    to start its per-client server (a fork beside gRPC threads, in Ray's log); a bot that
    cannot join exits with one line and is started again. Reconnects retry anyway."""
    for attempt in range(tries):
        try:
            await asyncio.wait_for(bot.start_executor(), WAIT)
            return
        except ExecutorUnavailable:
            if attempt == tries - 1:
                raise


@pytest.mark.asyncio(loop_scope="function")
async def test_a_lost_head_leaves_jobs_waiting_and_the_bot_rejoins_when_it_is_back(
    tmp_path, cat_photo, monkeypatch
):
    # Ray Client waits 30 s for a lost connection to come back before it gives up; the
    # bot's driver process inherits this shorter wait.
    monkeypatch.setenv("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "5")
    head = RayHead()
    head.start()
    settings = settings_for(
        tmp_path,
        executor="ray",
        ray_address=f"ray://127.0.0.1:{head.client_port}",  # as the bot in docker-compose.yml
        worker_cpus=2,
        ray_poll=1.0,  # and the driver checks the cluster as often
        ray_reconnect=1.0,
        ray_connect_timeout=12.0,  # each try while the head is down gives up this soon
    )
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        bob, carol, dave = (fake.add_member(guild, name) for name in ("bob", "carol", "dave"))
        bot = create_bot(settings)
        try:
            await join_cluster(bot)
            await fake.start_bot(bot)
            assert bot.executor.capacity == 1
            seen: list[int] = []
            cog_hook = bot.executor.on_capacity_change
            bot.executor.on_capacity_change = lambda: (
                seen.append(bot.executor.capacity),
                cog_hook(),
            )
            image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
            first = await fake.slash(
                guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 2}
            )
            await first.wait_original(lambda m: bool(m.embeds and m.files), timeout=WAIT)

            assert head.kill() >= 3  # the GCS, the raylets, the Ray Client server...
            in_hand = await fake.slash(  # taken at once: the bot does not know yet
                guild, carol, "dream", {"image": image, "preset": "one-octave", "iterations": 2}
            )
            await in_hand.wait_original(lambda m: "Dreaming" in (m.content or ""), timeout=WAIT)
            await eventually(lambda: seen == [0], timeout=2 * WAIT)  # lost: no workers
            paused = await in_hand.wait_original(  # its member is told it waits
                lambda m: "can't be reached" in (m.content or ""), timeout=WAIT
            )
            assert "Dreaming" in paused.content and "is kept" in paused.content
            assert paused.buttons  # and can still cancel it
            waiting = await fake.slash(
                guild, dave, "dream", {"image": image, "preset": "one-octave", "iterations": 2}
            )
            told = await waiting.wait_original(
                lambda m: "can't be reached" in (m.content or ""), timeout=WAIT
            )
            assert told.buttons  # still queued, still cancellable
            assert [job.user_id for job in bot.queue.waiting()] == [dave.id]
            assert [job.user_id for job in bot.queue.running()] == [carol.id]  # kept, not failed
            status = await fake.slash(guild, ada, "dreamadmin status")
            text = (await status.wait_callback()).data["content"]
            assert "(ray): 0 ready of 1" in text and "`Ray cluster` unreachable" in text, text
            tries = bot.executor.drivers_started
            await eventually(lambda: bot.executor.drivers_started >= tries + 1)  # it keeps trying

            head.start()  # back (a new cluster: the bot's new driver joins it)
            for each in (in_hand, waiting):  # the one in hand first, then the one in line
                result = await each.wait_original(
                    lambda m: bool(m.embeds and m.files), timeout=2 * WAIT
                )
                assert "one-octave" in result.embeds[0]["title"]
            history = [version.get("content") or "" for version in in_hand.original.history]
            assert not any("failed" in text for text in history)
            assert bot.executor.capacity == 1 and seen == [0, 1]
        finally:
            await bot.close()
            head.kill()
