"""One error handler for every app command (`DreamTree.on_error`), over the wire.

A command that raises must not leave the member with "The application did not
respond": they get a private message with a reference the log carries too, and
the bot goes on answering.
"""

from __future__ import annotations

import logging
import re

import discord
import pytest
from discord import app_commands

from bot import Settings, create_bot
from tests.fakediscord import FakeDiscord

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]


class NoEngine:
    """An executor no test here reaches: the commands under test never dream."""

    model_name = "inceptionv3"
    capacity = 1
    on_capacity_change = None

    def workers(self) -> list:
        return []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel):
        raise AssertionError("no dream in this test")


def add_failing_commands(bot) -> None:
    async def boom(interaction: discord.Interaction) -> None:
        raise RuntimeError("a bug in a command")

    async def late_boom(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        raise KeyError("a bug after the answer was deferred")

    bot.tree.add_command(app_commands.Command(name="boom", description="raises", callback=boom))
    bot.tree.add_command(
        app_commands.Command(name="late-boom", description="defers, raises", callback=late_boom)
    )


async def test_a_command_that_raises_answers_privately_with_a_logged_reference(
    tmp_path, caplog
):
    settings = Settings(token="fake-token", weights="random", db_path=str(tmp_path / "b.db"))
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings, NoEngine())
        add_failing_commands(bot)
        await fake.start_bot(bot)

        with caplog.at_level(logging.ERROR, logger="dreambot"):
            inter = await fake.slash(guild, bob, "boom")
            callback = await inter.wait_callback()
        assert callback.type == 4 and callback.ephemeral
        said = callback.data["content"]
        assert "Something went wrong" in said
        reference = re.search(r"reference `(\w+)`", said)
        assert reference is not None
        logged = [r for r in caplog.records if reference.group(1) in r.getMessage()]
        assert logged and logged[0].exc_info is not None  # the traceback is in the log
        assert "a bug in a command" in str(logged[0].exc_info[1])

        # Deferred first: the word comes as a private follow-up instead.
        late = await fake.slash(guild, bob, "late-boom")
        followups = await late.wait_followups()
        assert "Something went wrong" in (followups[0].content or "")
        assert followups[0].ephemeral

        # The bot goes on: the next command is answered as usual.
        queue = await fake.slash(guild, bob, "queue")
        assert "no dreams" in (await queue.wait_callback()).data["content"]
