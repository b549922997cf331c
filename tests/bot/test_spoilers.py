"""Spoilers over the wire: `/dreamadmin spoiler on` for every result of a server, and
`/dream spoiler:true` for one; the gallery and the animation follow.

Shares the engine, fixtures and helpers of tests/bot/test_dream.py.
"""

from __future__ import annotations

import pytest

from tests.bot.test_dream import DREAM, png, world
from tests.fakediscord import MANAGE_GUILD

__all__ = ["world"]  # a pytest fixture, imported for its side effect

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]

QUICK = {"preset": "one-octave", "iterations": 1}


def delivered(message) -> bool:
    return bool(message.embeds and message.files)


async def test_one_dream_as_a_spoiler_then_every_dream_of_the_server(world, cat_photo):
    fake, _bot, guild = world
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")

    plain = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    result = await plain.wait_original(delivered, timeout=DREAM)
    assert [file.filename for file in result.files] == ["dream.png"]
    assert result.embeds[0]["image"]["url"] == "attachment://dream.png"

    one = await fake.slash(
        guild, bob, "dream", {"image": image, **QUICK, "spoiler": True, "animate": True}
    )
    result = await one.wait_original(delivered, timeout=DREAM)
    assert [file.filename for file in result.files] == ["SPOILER_dream.png"]
    assert "image" not in result.embeds[0]  # an embed would show it unblurred
    (animation,) = await one.wait_followups(1, timeout=DREAM)
    assert [file.filename for file in animation.files] == ["SPOILER_dream-forming.gif"]

    said = await fake.slash(guild, ada, "dreamadmin spoiler", {"value": "on"})
    assert "posted as a spoiler" in (await said.wait_callback()).data["content"]
    every = await fake.slash(guild, bob, "dream", {"image": image, **QUICK, "gallery": True})
    result = await every.wait_original(delivered, timeout=DREAM)
    assert [file.filename for file in result.files] == ["SPOILER_dream.png"]
    (gallery,) = await every.wait_followups(1, timeout=DREAM)
    assert gallery.files and all(f.filename.startswith("SPOILER_octave-") for f in gallery.files)
