"""`/dreams` and `/dreamadmin stats` over the wire, read from the dream history.

Shares the engine, fixtures and helpers of tests/bot/test_dream.py.
"""

from __future__ import annotations

import re

import pytest

from tests.bot.test_dream import DREAM, png, world
from tests.bot.test_result_buttons import QUICK, delivered, entry_of
from tests.fakediscord import MANAGE_GUILD

__all__ = ["world"]  # a pytest fixture, imported for its side effect

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]


async def test_dreams_lists_a_members_own_with_links_and_stats_count_the_week(world, cat_photo):
    fake, bot, guild = world
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob, eve = fake.add_member(guild, "bob"), fake.add_member(guild, "eve")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    posted = []
    for preset in ("one-octave", "upper-layers"):
        inter = await fake.slash(guild, bob, "dream", {"image": image, **QUICK, "preset": preset})
        posted.append(await inter.wait_original(delivered, timeout=DREAM))
    for message in posted:
        await entry_of(bot, message)

    listed = await fake.slash(guild, bob, "dreams", {})
    said = await listed.wait_callback()
    assert said.ephemeral
    lines = said.data["content"].splitlines()
    assert lines[0] == "Your latest dreams here, newest first:"
    assert "**upper-layers**" in lines[1] and "**one-octave**" in lines[2]
    for line, message in zip(lines[1:], reversed(posted), strict=True):
        link = f"https://discord.com/channels/{guild.id}/{guild.text_channel.id}/{message.id}"
        assert f"[result]({link})" in line
        assert re.match(r"<t:\d+:R> ", line) and "160×107" in line

    nobody = await (await fake.slash(guild, eve, "dreams", {})).wait_callback()
    assert nobody.data["content"].startswith("You have no dreams here yet")

    asked = await fake.slash(guild, bob, "dreamadmin stats", {}, strict=False)
    refused = await asked.wait_callback()
    assert refused.ephemeral and "Manage Server" in refused.data["content"]
    stats = await (await fake.slash(guild, ada, "dreamadmin stats", {})).wait_callback()
    text = stats.data["content"]
    assert stats.ephemeral and text.startswith("**Dreams this week** (UTC days): 2")
    assert len(re.findall(r"^`\w{3} \d\d \w{3}` ", text, re.M)) == 7
    assert text.splitlines()[7].endswith(" 2")  # today, the last day
    assert "Median wait in line" in text
    assert "Most used presets: one-octave (1), upper-layers (1)" in text
