"""Secrets stay secret, one server never touches another, hostile parameters are refused."""

from __future__ import annotations

import logging
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import create_bot
from dream_engine import DreamParams, ParamError, parse_layers
from tests.bot.test_dream import DREAM, png, settings_for
from tests.conftest import REPO
from tests.fakediscord import MANAGE_GUILD, FakeDiscord

SECRET = "MTIzNDU2Nzg5.sekret-token.do-not-log-me"


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_the_token_never_reaches_the_logs(tmp_path, executor, cat_photo, caplog):
    caplog.set_level(logging.DEBUG)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings_for(tmp_path, token=SECRET), executor)
        await fake.start_bot(bot, token=SECRET)
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(
            guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 1}
        )
        await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert len(caplog.records) > 10  # the bot did log (discord.py at DEBUG included)
    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    assert SECRET not in logged
    assert "sekret" not in logged


def test_env_is_ignored_and_the_container_runs_as_non_root():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    users = re.findall(r"^USER\s+(\S+)", (REPO / "Dockerfile").read_text(), re.M)
    assert users and users[-1] not in ("root", "0")


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_one_servers_admin_never_changes_another_servers_settings(tmp_path, executor):
    async with FakeDiscord() as fake:
        art, music = fake.add_guild("Art"), fake.add_guild("Music")
        art_admin = fake.add_member(art, "ada", permissions=MANAGE_GUILD)
        music_admin = fake.add_member(music, "mo", permissions=MANAGE_GUILD)
        bot = create_bot(settings_for(tmp_path), executor)
        await fake.start_bot(bot)
        await (
            await fake.slash(art, art_admin, "dreamadmin user-limit", {"value": 5})
        ).wait_callback()
        shown = await (await fake.slash(music, music_admin, "dreamadmin show")).wait_callback()
        assert "2 (default)" in shown.data["content"]
        assert (await bot.guild_settings.get(music.id)).user_limit == 2
        assert (await bot.guild_settings.get(art.id)).user_limit == 5


@given(st.text(max_size=600))
def test_any_layers_text_parses_or_is_refused_politely(text):
    try:
        layers = parse_layers(text)
    except ParamError as error:
        assert len(str(error)) < 200
        return
    assert layers or text.strip().casefold() == "none"  # "none": channels or a target alone
    assert all(isinstance(weight, float) for weight in layers.values())


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=20),
    st.none(),
)


layer_names = st.text(max_size=40) | st.sampled_from(["mixed4", "mixed0"])


@given(
    step=numbers, octaves=numbers, octave_scale=numbers, iterations=numbers, max_loss=numbers,
    seed=numbers, weight=numbers, layer=layer_names,
)  # fmt: skip
def test_any_parameters_validate_or_are_refused_politely(
    step, octaves, octave_scale, iterations, max_loss, seed, weight, layer
):
    params = DreamParams(
        layers={layer: weight}, step=step, octaves=octaves, octave_scale=octave_scale,
        iterations=iterations, max_loss=max_loss, seed=seed,
    )  # fmt: skip
    try:
        params.validate()
    except ParamError as error:
        assert 0 < len(str(error)) < 200
        return
    assert 0 < params.step <= 1 and 1 <= params.octaves <= 10 and math.isfinite(params.max_loss)
