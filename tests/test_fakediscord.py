"""The fake Discord against a tiny real discord.py bot, over the wire.

These tests pin down the fake itself (so the bot's e2e tests can trust it):
login and command sync, the gateway heartbeat, a deferred slash command with
edits, follow-up files and a button, autocomplete, a context menu, a dead
token, and Discord's server-side limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import MANAGE_GUILD, FakeDiscord, FakeGuild, FakeMember

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
STYLES = ["plain", "pastel", "psychedelic", "sepia"]


class EchoView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.button(label="Again", custom_id="echo:again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(
            content=f"Again, {interaction.user.name}!", view=None
        )


class PresetModal(discord.ui.Modal, title="Name your preset"):
    name: discord.ui.TextInput = discord.ui.TextInput(label="Name", custom_id="preset:name")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"Saved {self.name.value}", ephemeral=True)


class PickView(discord.ui.View):
    @discord.ui.select(
        custom_id="pick:style",
        options=[discord.SelectOption(label=s.title(), value=s) for s in STYLES],
    )
    async def style(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await interaction.response.send_modal(PresetModal())


class EchoBot(commands.Bot):
    """Just enough bot to exercise every route the DeepDream bot will use."""

    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default())
        self.errors: list[Exception] = []
        self.release = asyncio.Event()  # lets a test hold /slow until the token is dead
        self._add_commands()

    async def setup_hook(self) -> None:
        await self.tree.sync()

    def _add_commands(self) -> None:
        @self.tree.command(description="Echo an image back")
        @app_commands.describe(image="Any image", style="How to echo it")
        async def echo(
            interaction: discord.Interaction, image: discord.Attachment, style: str = "plain"
        ) -> None:
            await interaction.response.defer(thinking=True)
            data = await image.read()
            await interaction.edit_original_response(content="Working 1/2")
            await interaction.edit_original_response(
                content=f"Working 2/2 ({len(data)} bytes, {style})"
            )
            files = [
                discord.File(io.BytesIO(data), filename="copy.png"),
                discord.File(io.BytesIO(data[::-1]), filename="reversed.bin"),
            ]
            await interaction.followup.send("Here you go", files=files, view=EchoView())

        @echo.autocomplete("style")
        async def style_choices(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return [
                app_commands.Choice(name=s.title(), value=s)
                for s in STYLES
                if s.startswith(current)
            ]

        @self.tree.command(description="Reply after the test says so")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await self.release.wait()
            try:
                await interaction.edit_original_response(content="Finally done")
            except discord.HTTPException as error:  # the token died: say it in the channel instead
                self.errors.append(error)
                await interaction.channel.send(f"{interaction.user.mention} finally done")

        @self.tree.command(description="Say something far too long")
        async def ramble(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.send_message("bla " * 600)
            except discord.HTTPException as error:
                self.errors.append(error)
                await interaction.response.send_message("Sorry, too long", ephemeral=True)

        @self.tree.command(description="Server settings")
        @app_commands.default_permissions(manage_guild=True)
        async def settings(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("ok", ephemeral=True)

        @self.tree.command(description="Defer, then answer with a follow-up only")
        async def later(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("Here it is", ephemeral=True)
            await interaction.followup.send("And one more")

        @self.tree.command(description="Answer too late")
        async def dawdle(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.2)
            try:
                await interaction.response.send_message("Sorry I'm late")
            except discord.NotFound as error:
                self.errors.append(error)

        @self.tree.command(description="Pick a style")
        async def pick(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Pick one", view=PickView())

        @self.tree.command(description="Work for a while")
        async def work(interaction: discord.Interaction, seconds: float, blocking: bool) -> None:
            await interaction.response.defer()
            if blocking:
                time.sleep(seconds)  # the bug the heartbeat count exists to catch
            else:
                await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)
            await interaction.edit_original_response(content="worked")

        admin = app_commands.Group(
            name="dreamadmin",
            description="Bot settings",
            default_permissions=discord.Permissions(manage_guild=True),
        )
        limits = app_commands.Group(name="limits", description="Queue limits", parent=admin)

        @limits.command(name="queue-size", description="How many jobs may wait")
        async def queue_size(
            interaction: discord.Interaction, size: app_commands.Range[int, 1, 50]
        ) -> None:
            await interaction.response.send_message(f"Queue size is now {size}", ephemeral=True)

        self.tree.add_command(admin)

        @self.tree.context_menu(name="Echo this image")
        async def echo_message(interaction: discord.Interaction, message: discord.Message) -> None:
            try:
                await message.attachments[0].read()
            except discord.HTTPException as error:
                self.errors.append(error)
                await interaction.response.send_message(
                    "Could not download that image", ephemeral=True
                )
                return
            await interaction.response.send_message("Downloaded it")


@dataclass
class World:
    fake: FakeDiscord
    bot: EchoBot
    guild: FakeGuild
    bob: FakeMember


@contextlib.asynccontextmanager
async def running(**fake_options: Any) -> AsyncIterator[World]:
    async with FakeDiscord(**fake_options) as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = EchoBot()
        await fake.start_bot(bot)
        yield World(fake, bot, guild, bob)


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    async with running() as world:
        yield world


@pytest.mark.asyncio
async def test_login_syncs_commands_and_keeps_the_heartbeat(world: World) -> None:
    fake = world.fake
    assert world.bot.user is not None and world.bot.user.id == fake.bot_user.id
    assert world.bot.get_guild(world.guild.id) is not None
    assert [c.route for c in fake.calls[:2]] == ["GET /users/@me", "GET /oauth2/applications/@me"]
    assert any(c.route == "PUT /applications/{app}/commands" and c.ok for c in fake.calls)
    echo = next(c for c in fake.commands() if c["name"] == "echo")
    assert [(o["name"], o["type"], o.get("required", False)) for o in echo["options"]] == [
        ("image", 11, True),
        ("style", 3, False),
    ]
    assert fake.gateway.identify is not None and fake.gateway.identify["intents"] > 0
    await fake.wait_heartbeats(fake.heartbeats + 2, timeout=2)
    assert not fake.unexpected_calls


@pytest.mark.asyncio
async def test_slash_defer_edits_followup_files_and_button(world: World) -> None:
    fake, bob = world.fake, world.bob
    att = fake.add_attachment("cat.png", IMAGE, "image/png")

    inter = await fake.slash(world.guild, bob, "echo", {"image": att, "style": "sepia"})
    callback = await inter.wait_callback()
    followups = await inter.wait_followups(1)

    assert callback.type == 5 and not callback.ephemeral and callback.delay < 3
    assert [c.route.split(" ")[0] for c in inter.calls] == ["POST", "PATCH", "PATCH", "POST"]
    assert [m["content"] for m in inter.original.history] == [
        "",
        "Working 1/2",
        f"Working 2/2 ({len(IMAGE)} bytes, sepia)",
    ]
    assert not inter.original.loading and fake.cdn_file(att).downloads == 1

    followup = followups[0]
    assert followup is not inter.original and followup.content == "Here you go"
    assert [(f.filename, f.data) for f in followup.files] == [
        ("copy.png", IMAGE),
        ("reversed.bin", IMAGE[::-1]),
    ]
    assert followup.files[0].content_type == "image/png"
    assert [b["label"] for b in followup.buttons] == ["Again"]

    clicked = await fake.click(world.guild, bob, followup, "echo:again")
    assert (await clicked.wait_callback()).type == 7
    assert followup.content == "Again, bob!" and followup.buttons == []
    assert clicked.original is followup

    transcript = fake.transcript(inter)
    assert "ack: deferred message (thinking)" in transcript
    assert (
        "follow-up: 'Here you go'" in transcript
        and "copy.png" in transcript
        and "[Again]" in transcript
    )


@pytest.mark.asyncio
async def test_autocomplete_returns_the_bots_choices(world: World) -> None:
    inter = await world.fake.autocomplete(
        world.guild, world.bob, "echo", {"style": "p"}, focused="style"
    )
    assert (await inter.wait_callback()).type == 8
    assert inter.choices == [
        {"name": "Plain", "value": "plain"},
        {"name": "Pastel", "value": "pastel"},
        {"name": "Psychedelic", "value": "psychedelic"},
    ]


@pytest.mark.asyncio
async def test_expired_token_answers_401_and_the_bot_falls_back_to_the_channel(
    world: World,
) -> None:
    fake, bot = world.fake, world.bot
    inter = await fake.slash(world.guild, world.bob, "slow")
    await inter.wait_callback()
    fake.expire(inter)
    bot.release.set()

    channel = world.guild.text_channel
    await fake.wait_for(
        lambda _: fake.channel_messages(channel), what="the fallback channel message"
    )
    assert isinstance(bot.errors[0], discord.HTTPException)
    assert (bot.errors[0].status, bot.errors[0].code) == (401, 50027)
    assert fake.channel_messages(channel)[0].content == f"{world.bob.mention} finally done"
    assert "FAILED 401 Invalid Webhook Token" in inter.transcript()
    assert "channel message" in inter.transcript()


@pytest.mark.asyncio
async def test_discord_limits_reject_an_overlong_message(world: World) -> None:
    inter = await world.fake.slash(world.guild, world.bob, "ramble")
    callback = await inter.wait_callback()
    error = world.bot.errors[0]
    assert isinstance(error, discord.HTTPException) and (error.status, error.code) == (400, 50035)
    assert "content" in str(error)
    assert callback.ephemeral and inter.original.content == "Sorry, too long"


@pytest.mark.asyncio
async def test_context_menu_on_a_message_whose_download_fails(world: World) -> None:
    fake = world.fake
    att = fake.add_attachment("broken.png", IMAGE, status=500)
    target = fake.add_message(world.guild.text_channel, world.bob, "look", attachments=[att])

    inter = await fake.context_menu(world.guild, world.bob, "Echo this image", target)
    assert (await inter.wait_callback(timeout=5)).ephemeral
    assert inter.original.content == "Could not download that image"
    assert fake.cdn_requests[-1][2] == 500


@pytest.mark.asyncio
async def test_the_client_side_checks_discord_would_make(world: World) -> None:
    fake, guild = world.fake, world.guild
    with pytest.raises(AssertionError, match="requires option 'image'"):
        await fake.slash(guild, world.bob, "echo")
    with pytest.raises(AssertionError, match="would hide it"):
        await fake.slash(guild, world.bob, "settings")
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    inter = await fake.slash(guild, admin, "settings")
    assert (await inter.wait_callback()).data["content"] == "ok"


@pytest.mark.asyncio
async def test_first_followup_after_a_defer_replaces_the_thinking_message(world: World) -> None:
    inter = await world.fake.slash(world.guild, world.bob, "later")
    first, second = await inter.wait_followups(2)
    assert first is inter.original and first.content == "Here it is"
    assert not first.ephemeral, "the defer was public, so its placeholder stays public"
    assert second is not first and second.content == "And one more"
    assert [m["flags"] for m in first.history] == [128, 0]


@pytest.mark.asyncio
async def test_select_then_modal_round_trip(world: World) -> None:
    fake, guild, bob = world.fake, world.guild, world.bob
    inter = await fake.slash(guild, bob, "pick")
    await inter.wait_callback()
    with pytest.raises(AssertionError, match="offers"):
        await fake.click(guild, bob, inter.original, "pick:style", ["neon"])
    picked = await fake.click(guild, bob, inter.original, "pick:style", ["sepia"])
    assert (await picked.wait_callback()).type == 9 and picked.modal["title"] == "Name your preset"
    submitted = await fake.submit_modal(picked, {"preset:name": "warm"})
    assert (await submitted.wait_callback()).data["content"] == "Saved warm"


@pytest.mark.asyncio
async def test_subcommand_groups_and_ranges(world: World) -> None:
    fake, guild = world.fake, world.guild
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    with pytest.raises(AssertionError, match=r"must be in \[1, 50\]"):
        await fake.slash(guild, ada, "dreamadmin limits queue-size", {"size": 80})
    inter = await fake.slash(guild, ada, "dreamadmin limits queue-size", {"size": 8})
    assert inter.payload["data"]["options"][0]["options"][0]["options"] == [
        {"name": "size", "type": 4, "value": 8}
    ]
    assert (await inter.wait_callback()).data["content"] == "Queue size is now 8"


@pytest.mark.asyncio
async def test_a_late_callback_is_an_unknown_interaction() -> None:
    async with running(ack_deadline=0.1) as world:
        inter = await world.fake.slash(world.guild, world.bob, "dawdle")
        await inter.wait_for(lambda calls: calls, what="the late callback")
        assert (inter.calls[0].status, inter.calls[0].response["code"]) == (404, 10062)
        await world.fake.wait_for(lambda _: world.bot.errors, what="the bot to see it")
        assert isinstance(world.bot.errors[0], discord.NotFound) and inter.callback is None


@pytest.mark.asyncio
async def test_rate_limits_are_retried_and_resume_works(world: World) -> None:
    fake = world.fake
    fake.inject_error("POST", "/interactions/*/callback", 429, retry_after=0.05)
    inter = await fake.slash(world.guild, world.bob, "later")
    await inter.wait_followups(2)
    assert [c.status for c in inter.calls][:2] == [429, 200]

    await fake.gateway.reconnect()
    inter = await fake.slash(world.guild, world.bob, "later")  # sent while the bot reconnects
    await inter.wait_followups(2)
    assert fake.gateway.resumes == 1


@pytest.mark.asyncio
async def test_heartbeats_stop_only_when_the_bot_blocks_its_loop() -> None:
    async with running(heartbeat_interval=0.05) as world:
        fake = world.fake
        for blocking in (False, True):
            inter = await fake.slash(
                world.guild, world.bob, "work", {"seconds": 0.6, "blocking": blocking}
            )
            await inter.wait_original()
            gap = fake.longest_heartbeat_gap(since=inter.created)
            assert (gap > 0.4) is blocking, f"blocking={blocking}: longest gap {gap:.2f}s"
