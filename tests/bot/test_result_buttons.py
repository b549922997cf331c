"""The buttons under a posted dream, over the wire: Delete (its owner or an admin), Info
(how it was made) and Reroll (again, with a new seed).

Shares the engine, fixtures and helpers of tests/bot/test_dream.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex

import pytest

from bot import create_bot
from dream_engine.cli import main
from dream_engine.cli.flags import resolve_params
from dream_engine.core.params import PRECISIONS
from tests.bot.test_dream import DREAM, png, settings_for, world
from tests.fakediscord import MANAGE_GUILD, FakeDiscord

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
    (said,) = await done.wait_followups(1)
    assert said.ephemeral and said.content == "Deleted."
    assert first.deleted
    by_admin = await fake.click(guild, ada, second, delete_button(second)["custom_id"])
    assert (await by_admin.wait_followups(1))[0].content == "Deleted."
    assert second.deleted


async def entry_of(bot, message):
    """The history's entry for a posted result (written just after the post lands)."""
    job_id = button(message, "Info")["custom_id"].split(":")[-1]
    for _ in range(200):
        entry = await bot.history.get(job_id)
        if entry is not None:
            return entry
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached the history")


def button(message, label: str) -> dict:
    buttons = [item for row in message.components for item in row["components"]]
    (found,) = [item for item in buttons if item.get("label") == label]
    return found


async def test_info_says_how_a_dream_was_made_even_after_a_restart(tmp_path, executor, cat_photo):
    """Model, precision, every parameter and the CLI line that parses back to the dream;
    the button under a result from before a restart still answers."""
    settings = settings_for(tmp_path)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob, eve = fake.add_member(guild, "bob"), fake.add_member(guild, "eve")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, executor)
        await fake.start_bot(bot)
        inter = await fake.slash(guild, bob, "dream", {"image": image, **QUICK, "jitter": 8})
        result = await inter.wait_original(delivered, timeout=DREAM)
        labels = [item.get("label") for row in result.components for item in row["components"]]
        assert labels[-3:] == ["Reroll", "Info", "Delete"]
        entry = await entry_of(bot, result)
        await bot.close()

        again = create_bot(settings, executor)
        await fake.start_bot(again)
        asked = await fake.click(guild, eve, result, button(result, "Info")["custom_id"])
        said = await asked.wait_callback()
        text = said.data["content"]
        assert said.ephemeral
        assert "preset **one-octave**, model **inceptionv3**" in text
        assert f"precision **{entry.precision}**" in text and entry.precision in PRECISIONS
        assert "iterations=1" in text and "jitter=8" in text and f"seed={entry.params.seed}" in text
        line = text.split("```sh\n")[1].split("\n```")[0]
        args = main.build_parser().parse_args(shlex.split(line)[3:])
        assert resolve_params(args) == entry.params
        assert args.weights == "random" and args.max_side == 160


async def test_reroll_dreams_it_again_with_a_new_seed_counted_like_any_dream(world, cat_photo):
    fake, bot, guild = world
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    first = await inter.wait_original(delivered, timeout=DREAM)
    limit = await fake.slash(guild, ada, "dreamadmin daily-limit", {"value": 1})
    await limit.wait_callback()

    again = await fake.click(guild, bob, first, button(first, "Reroll")["custom_id"])
    assert not (await again.wait_callback()).ephemeral  # a dream in public, like /dream's
    rerolled = await again.wait_original(delivered, timeout=DREAM)
    changed = {f["name"]: f["value"] for f in rerolled.embeds[0]["fields"]}["Changed from preset"]
    assert "jitter=32" in changed  # one-octave has no jitter: without it a seed changes nothing
    old, new = [await entry_of(bot, message) for message in (first, rerolled)]
    assert new.params.seed != old.params.seed and new.params.jitter == 32
    assert new.params.replace(seed=old.params.seed, jitter=0) == old.params
    assert (new.source_id, new.preset) == (old.source_id, "one-octave")
    assert new.user_id == bob.id

    refused = await fake.click(guild, bob, rerolled, button(rerolled, "Reroll")["custom_id"])
    said = await refused.wait_callback()
    assert said.ephemeral and "your 1 dream for today" in said.data["content"]

    # Job ids are short: a later dream that drew the same id must not answer for this one.
    await bot.history.record(dataclasses.replace(old, message_id=rerolled.id))
    stale = await fake.click(guild, bob, first, button(first, "Info")["custom_id"])
    assert "no longer in the history" in (await stale.wait_callback()).data["content"]
