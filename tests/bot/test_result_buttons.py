"""The buttons under a posted dream, over the wire: Delete, for its owner or an admin.

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


def delete_button(message) -> dict:
    buttons = [item for row in message.components for item in row["components"]]
    (button,) = [item for item in buttons if item.get("label") == "Delete"]
    return button


async def test_only_the_owner_or_an_admin_deletes_a_posted_dream(world, cat_photo):
    fake, _bot, guild = world
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob, eve = fake.add_member(guild, "bob"), fake.add_member(guild, "eve")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    posted = []
    for _ in range(2):
        inter = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
        posted.append(await inter.wait_original(delivered, timeout=DREAM))
    first, second = posted
    custom_id = delete_button(first)["custom_id"]
    assert first.components[0]["components"][0]["placeholder"] == "Dream again with…"

    refused = await fake.click(guild, eve, first, custom_id)
    said = await refused.wait_callback()
    assert said.ephemeral and "Only the member who asked" in said.data["content"]
    assert not first.deleted

    done = await fake.click(guild, bob, first, custom_id)
    said = await done.wait_callback()
    assert said.ephemeral and said.data["content"] == "Deleted."
    assert first.deleted
    by_admin = await fake.click(guild, ada, second, delete_button(second)["custom_id"])
    assert (await by_admin.wait_callback()).data["content"] == "Deleted."
    assert second.deleted
