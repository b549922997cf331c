"""`docker-compose.yml` running for real: this runs inside its `bot` container, whose
Ray head and worker nodes are the other containers; `tests/deploy/compose_live.sh` sets it up
and kills the head halfway. Skipped everywhere else (CI has no Docker engine).

The bot is the real one, with the container's own settings (`DREAM_EXECUTOR=ray`,
`RAY_ADDRESS=ray://ray-head:10001` from the compose file), talking to the fake Discord
in this container. It checks what only a real compose run shows: the bot reaches the
head by its service name, finds one worker per worker container, dreams on them (not
on itself), two dreams at a time, and, when the script kills and restarts the head,
the worker containers come back (their restart policy) and the bot dreams again.
"""

from __future__ import annotations

import os
import socket
import sys

import numpy as np
import pytest
from PIL import Image

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("DREAM_COMPOSE_LIVE"),
        reason="runs in docker-compose.yml's bot container",
    ),
    pytest.mark.e2e,
    pytest.mark.ray,
]

from bot import Settings, create_bot  # noqa: E402
from tests.bot.test_dream import png  # noqa: E402
from tests.fakediscord import MANAGE_GUILD, FakeDiscord  # noqa: E402
from tests.runtime.test_ray_cluster import eventually  # noqa: E402
from tests.runtime.test_ray_head_loss import join_cluster  # noqa: E402

WAIT = 240.0  # a fresh worker builds its engine first
HEAD_LOSS_MARK = "COMPOSE-LIVE: kill the head now"


def photo() -> Image.Image:
    """Something to dream on, made here: the bot's image has no test photos."""
    across = np.tile(np.linspace(0, 255, 240), (160, 1))
    down = np.tile(np.linspace(0, 255, 160)[:, None], (1, 240))
    noise = np.random.default_rng(3).uniform(0, 255, (160, 240))
    pixels = np.stack([across, down, noise], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@pytest.mark.asyncio(loop_scope="function")
async def test_the_bot_dreams_on_the_worker_containers_and_outlives_the_head(tmp_path):
    expected = int(os.environ.get("DREAM_COMPOSE_WORKERS", "2"))
    settings = Settings.from_env(
        {
            **os.environ,
            "DISCORD_TOKEN": "fake-token",  # the fake Discord's
            "DREAM_DB": str(tmp_path / "bot.sqlite3"),
            "DREAM_MAX_SIDE": "160",
        }
    )
    assert settings.executor == "ray" and settings.ray_address == "ray://ray-head:10001"
    own_host = socket.gethostname()  # a container's id
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        bob, carol = fake.add_member(guild, "bob"), fake.add_member(guild, "carol")
        bot = create_bot(settings)
        try:
            await join_cluster(bot)
            await fake.start_bot(bot)
            await eventually(lambda: bot.executor.capacity == expected, WAIT)
            workers = bot.executor.workers()
            hosts = {worker.host for worker in workers}
            assert len(hosts) == expected, workers  # one per worker container
            assert not any(where.startswith(f"{own_host} ") for where in hosts), (own_host, hosts)

            image = fake.add_attachment("photo.png", png(photo()), "image/png")
            options = {"image": image, "preset": "one-octave", "iterations": 2}
            dreams = [await fake.slash(guild, who, "dream", options) for who in (bob, carol)]
            for dream in dreams:
                result = await dream.wait_original(lambda m: bool(m.embeds and m.files), WAIT)
                assert "one-octave" in result.embeds[0]["title"]
            done = sorted(worker.jobs_done for worker in bot.executor.workers())
            assert sum(done) == 2 and (expected == 1 or done[-2:] == [1, 1]), done  # at once
            status = await fake.slash(guild, ada, "dreamadmin status")
            text = (await status.wait_callback()).data["content"]
            assert f"(ray): {expected} ready of {expected}" in text, text
            print(text, file=sys.stderr)

            if not os.environ.get("DREAM_COMPOSE_HEAD_LOSS"):
                return
            print(HEAD_LOSS_MARK, flush=True)
            await eventually(lambda: bot.executor.capacity == 0, WAIT)  # lost: no workers
            print("COMPOSE-LIVE: the bot sees no workers", flush=True)
            later = await fake.slash(guild, bob, "dream", options)
            told = await later.wait_original(lambda m: "can't be reached" in (m.content or ""))
            assert told.buttons  # still queued, still cancellable
            await eventually(lambda: bot.executor.capacity == expected, WAIT)  # all back
            print("COMPOSE-LIVE: the workers are back", flush=True)
            result = await later.wait_original(lambda m: bool(m.embeds and m.files), WAIT)
            assert "one-octave" in result.embeds[0]["title"]
        finally:
            await bot.close()
