"""The app installed to a member's account: `/dream` in servers the bot is not in, and DMs.

Over the wire against the fake Discord, whose `add_guild(with_bot=False)` is a server the
bot was never added to: it hears nothing of it and cannot reach its channels, and the
Discord client there offers only commands registered as installable to a user account.
Shares the engine, fixtures and helpers of tests/bot/test_dream.py.
"""

from __future__ import annotations

import pytest

from bot import create_bot
from tests.bot.test_dream import DREAM, png, settings_for
from tests.bot.test_result_buttons import QUICK, button, delivered, entry_of
from tests.fakediscord import MANAGE_GUILD, FakeDiscord

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]

EVERYWHERE = ["dream", "Dream this image", "queue", "cancel", "dreams"]


async def test_user_installed_dreams_answer_through_the_interaction_under_the_owners_limits(
    tmp_path, executor, cat_photo
):
    settings = settings_for(tmp_path, user_daily_limit=3)
    async with FakeDiscord() as fake:
        home = fake.add_guild("Home")
        elsewhere = fake.add_guild("Elsewhere", with_bot=False)
        bot = create_bot(settings, executor)
        await fake.start_bot(bot)

        registered = {cmd["name"]: cmd for cmd in fake.registry.list(None)}
        for name in EVERYWHERE:
            assert registered[name]["integration_types"] == [0, 1], name
            assert registered[name]["contexts"] == [0, 1, 2], name
        for name in ("dreamadmin", "compare", "layers"):
            assert registered[name]["integration_types"] == [0], name
        assert registered["dreamadmin"]["contexts"] == [0]

        ada = fake.add_member(elsewhere, "ada", permissions=MANAGE_GUILD)
        with pytest.raises(AssertionError, match="not installable to a user account"):
            await fake.slash(elsewhere, ada, "dreamadmin show", {})
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(elsewhere, ada, "dream", {"image": image, **QUICK})
        result = await inter.wait_original(delivered, timeout=DREAM)
        assert "one-octave" in result.embeds[0]["title"]
        assert not fake.channel_messages(elsewhere.text_channel)  # the bot may not post there
        entry = await entry_of(bot, result)
        link = f"https://discord.com/channels/{elsewhere.id}/{elsewhere.text_channel.id}/"
        assert entry.jump_url() == f"{link}{result.id}"
        listed = await (await fake.slash(elsewhere, ada, "dreams", {})).wait_callback()
        assert f"[result]({link}{result.id})" in listed.data["content"]
        assert not bot.queue.jobs_of(ada.id)  # done, and it never counted in a server's line

        # "Dream this image" there too: its preset dropdown starts a dream when picked.
        post = fake.add_message(elsewhere.text_channel, ada, "look", attachments=[image])
        menu = await fake.context_menu(elsewhere, ada, "Dream this image", post)
        assert (await menu.wait_callback()).ephemeral
        select = menu.original.components[0]["components"][0]
        picked = await fake.click(elsewhere, ada, menu.original, select["custom_id"],
                                  values=["one-octave"])  # fmt: skip
        from_menu = await picked.wait_original(delivered, timeout=DREAM)
        assert "one-octave" in from_menu.embeds[0]["title"]

        # The owner's limits: one count for DMs and every server the bot is not in; a
        # server the bot is in keeps its own (none here).
        dm = await fake.slash(None, ada.user, "dream", {"image": image, **QUICK})
        await dm.wait_original(delivered, timeout=DREAM)
        refused = await fake.slash(elsewhere, ada, "dream", {"image": image, **QUICK})
        said = await refused.wait_callback()
        assert said.ephemeral and "your 3 dreams for today" in said.data["content"]
        ada_home = fake.add_member(home, "ada-at-home")
        here = await fake.slash(home, ada_home, "dream", {"image": image, **QUICK})
        assert not (await here.wait_callback()).ephemeral

        # Delete works through the interaction: the bot cannot reach that server's channel.
        deleting = await fake.click(elsewhere, ada, result, button(result, "Delete")["custom_id"])
        assert (await deleting.wait_followups(1))[0].content == "Deleted."
        assert result.deleted


async def test_a_reply_that_outlives_its_token_goes_to_the_members_dms(
    tmp_path, executor, cat_photo
):
    """Where the bot is not in the server, its channel is not a fallback: the DMs are."""
    settings = settings_for(tmp_path, interaction_lifetime=0.01)  # dead before it is done
    async with FakeDiscord() as fake:
        elsewhere = fake.add_guild("Elsewhere", with_bot=False)
        bot = create_bot(settings, executor)
        await fake.start_bot(bot)
        bob = fake.add_member(elsewhere, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        await fake.slash(elsewhere, bob, "dream", {"image": image, **QUICK})
        dms = fake.dm_channel(bob.user)
        await fake.wait_for(
            lambda calls: any(m.files for m in fake.channel_messages(dms)), timeout=DREAM
        )
        (posted,) = [m for m in fake.channel_messages(dms) if m.files]
        assert posted.embeds and "your dream is ready" in posted.content
        assert not fake.channel_messages(elsewhere.text_channel)
        assert fake.spec_violations == []
