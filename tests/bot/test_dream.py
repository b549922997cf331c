"""The real bot, over the wire, against the local fake Discord.

The engine is the real one (InceptionV3, random weights) at a tiny max side,
shared by every bot in the session; each test gets its own fake Discord and
its own database.
"""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from bot import DreamBot, Settings, create_bot
from dream_engine.core.results import DreamResult
from tests.fakediscord import MANAGE_GUILD, FakeDiscord

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]
DREAM = 60.0  # generous wait for a dream on a busy 2-core CI machine


def settings_for(tmp_path: Path, **changes) -> Settings:
    base = dict(
        token="fake-token",
        weights="random",
        db_path=str(tmp_path / "bot.sqlite3"),
        max_side=160,
        progress_interval=0.05,
    )
    return Settings(**{**base, **changes})


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest_asyncio.fixture
async def world(tmp_path, executor) -> AsyncIterator[tuple[FakeDiscord, DreamBot, object]]:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bot = create_bot(settings_for(tmp_path), executor)
        await fake.start_bot(bot)
        yield fake, bot, guild


async def test_dream_with_a_preset_and_gallery(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream",
        {"image": image, "preset": "upper-layers", "gallery": True, "iterations": 2},
    )  # fmt: skip
    callback = await inter.wait_callback()
    assert callback.type == 5 and not callback.ephemeral  # deferred at once, publicly
    result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    with Image.open(io.BytesIO(result.files[0].data)) as dream:
        assert dream.size == (160, 107)
    embed = result.embeds[0]
    assert "upper-layers" in embed["title"]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["Size"] == "160×107" and "iterations=2" in fields["Changed from preset"]
    seen = [version.get("content") or "" for version in result.history]
    assert any("Queued" in text or "Dreaming" in text for text in seen)
    followups = await inter.wait_followups(1, timeout=DREAM)
    gallery = [file for message in followups for file in message.files]
    names = [file.filename for file in gallery]
    assert names == ["octave-1-of-2-114x76.png", "octave-2-of-2-160x107.png"]
    print(fake.transcript(inter))


async def test_without_a_preset_the_dropdown_starts_the_dream(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(guild, bob, "dream", {"image": image})
    callback = await inter.wait_callback()
    assert callback.ephemeral and callback.type == 4
    menu = inter.original
    select = menu.components[0]["components"][0]
    assert "balanced" in [option["value"] for option in select["options"]]
    picked = await fake.click(guild, bob, menu, select["custom_id"], values=["one-octave"])
    result = await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert "one-octave" in result.embeds[0]["title"]


async def test_seeds_move_the_jitter_and_are_refused_without_it(world, cat_photo):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    quick = {"image": image, "preset": "one-octave", "iterations": 3}
    refused = await fake.slash(guild, bob, "dream", {**quick, "seed": 1})
    said = await refused.wait_callback()
    assert said.ephemeral and "give one too, e.g. jitter:32" in said.data["content"]
    assert len(bot.queue) == 0 and not bot.queue.running()
    dreams = []
    for seed in (1, 2):
        inter = await fake.slash(guild, bob, "dream", {**quick, "jitter": 16, "seed": seed})
        result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        with Image.open(io.BytesIO(result.files[0].data)) as dreamed:
            dreams.append(np.asarray(dreamed.convert("RGB"), dtype=np.int16))
    assert np.abs(dreams[0] - dreams[1]).max() > 0  # another seed, other shifts, another dream


async def test_the_knobs_of_the_bands_and_the_view_change_the_dream_within_their_ranges(
    world, cat_photo
):
    """lap_levels, scale_jitter and rotate_jitter as /dream options; a seed needs no jitter
    when the view is transformed."""
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    quick = {"image": image, "preset": "one-octave", "iterations": 3}
    # Discord itself refuses a value outside the command's range, as the fake does.
    for bad in ({"lap_levels": 9}, {"rotate_jitter": 90.0}, {"scale_jitter": 0.8}):
        with pytest.raises(AssertionError, match=next(iter(bad))):
            await fake.slash(guild, bob, "dream", {**quick, **bad})
    assert len(bot.queue) == 0 and not bot.queue.running()
    asked = [
        {"lap_levels": 0},
        {"lap_levels": 4},
        {"scale_jitter": 0.05, "rotate_jitter": 5.0, "seed": 3},  # random views: a seed counts
    ]
    dreams = []
    for knobs in asked:
        inter = await fake.slash(guild, bob, "dream", {**quick, **knobs})
        result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        fields = {field["name"]: field["value"] for field in result.embeds[0]["fields"]}
        changed = fields.get("Changed from preset", "")
        for name, value in knobs.items():
            assert (f"{name}={value:g}" in changed) == (value != 0), changed
        with Image.open(io.BytesIO(result.files[0].data)) as dreamed:
            dreams.append(np.asarray(dreamed.convert("RGB"), dtype=np.int16))
    for other in dreams[1:]:  # another normalisation, another view: another dream
        assert np.abs(dreams[0] - other).mean() > 0.5


async def test_the_dropdown_keeps_what_else_was_asked_with_dream(world, cat_photo):
    """Options given without a preset wait for the pick; "Dream again with…" starts fresh."""
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    asked = {"image": image, "octaves": 2, "iterations": 2, "jitter": 8, "seed": 7, "gallery": True}
    inter = await fake.slash(guild, bob, "dream", asked)
    await inter.wait_callback()
    menu = inter.original
    select = menu.components[0]["components"][0]
    picked = await fake.click(guild, bob, menu, select["custom_id"], values=["one-octave"])
    result = await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    fields = {field["name"]: field["value"] for field in result.embeds[0]["fields"]}
    changed = fields["Changed from preset"]
    wanted = {"octaves": 2, "iterations": 2, "jitter": 8, "seed": 7}
    assert all(f"{name}={value}" in changed for name, value in wanted.items()), changed
    gallery = [f.filename for m in await picked.wait_followups(1, timeout=DREAM) for f in m.files]
    assert len(gallery) == 2 and all(name.startswith("octave-") for name in gallery)

    again = result.components[0]["components"][0]
    assert again["placeholder"] == "Dream again with…"
    redone = await fake.click(guild, bob, result, again["custom_id"], values=["one-octave"])
    fresh = await redone.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert "Changed from preset" not in {field["name"] for field in fresh.embeds[0]["fields"]}
    await asyncio.sleep(0.5)
    assert not redone.followups  # no gallery: nothing was asked this time


async def test_a_bot_on_the_dogs_model_offers_the_dogs_presets(tmp_path, cat_photo, dogs_executor):
    """Without a preset, and from "Dream this image": the model's own presets, not balanced."""
    dogs = dogs_executor  # the session's (a bot does not close an executor it is given)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        await fake.start_bot(create_bot(settings_for(tmp_path, model="dogs"), dogs))
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        post = fake.add_message(guild.text_channel, bob, "my cat", attachments=[image])
        inters = [
            await fake.slash(guild, bob, "dream", {"image": image, "iterations": 2}),
            await fake.context_menu(guild, bob, "Dream this image", post),
        ]
        for inter in inters:
            assert (await inter.wait_callback()).ephemeral
            select = inter.original.components[0]["components"][0]
            offered = [option["value"] for option in select["options"]]
            assert offered and all(name.startswith("dogs-") for name in offered), offered
        menu = inters[0].original
        select = menu.components[0]["components"][0]
        picked = await fake.click(guild, bob, menu, select["custom_id"], values=["dogs-fur"])
        result = await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        assert "dogs-fur" in result.embeds[0]["title"]


class InstantDreams:
    """An executor that answers every dream at once with a small picture, for any model."""

    capacity = 1
    on_capacity_change = None

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def workers(self) -> list:
        return []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel) -> DreamResult:
        image = request.image.resize((96, 64))
        return DreamResult(
            image=image, octaves=[image], losses=[[0.0]], params=request.params, seconds=0.1
        )


@pytest.mark.parametrize("model", ["mobilenetv2", "vgg19"])
async def test_a_bot_on_any_documented_model_can_dream(tmp_path, cat_photo, model):
    """.env.example offers DREAM_MODEL=mobilenetv2 or vgg19: each has a preset to dream with
    (the engine itself is stood in for: their ImageNet weights can't be downloaded here)."""
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        await fake.start_bot(create_bot(settings_for(tmp_path, model=model), InstantDreams(model)))
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(guild, bob, "dream", {"image": image})
        callback = await inter.wait_callback()
        content = callback.data.get("content", "")
        assert "inceptionv3" not in content, content
        select = inter.original.components[0]["components"][0]
        offered = [option["value"] for option in select["options"]]
        picked = await fake.click(
            guild, bob, inter.original, select["custom_id"], values=offered[:1]
        )
        await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=10)


async def test_preset_autocomplete_lists_presets_with_descriptions(world):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    inter = await fake.autocomplete(guild, bob, "dream", {"preset": "layers"}, focused="preset")
    await inter.wait_callback()
    names = [choice["value"] for choice in inter.choices]
    assert names[:2] == ["lower-layers", "upper-layers"]  # name matches before descriptions
    assert all(":" in choice["name"] for choice in inter.choices)


@pytest.mark.parametrize(
    ("filename", "data", "content_type", "size", "words"),
    [
        ("notes.png", b"just some text, honestly", "image/png", None, "not an image"),
        ("empty.png", b"", "image/png", None, "empty"),
        ("page.html", b"<html></html>", "text/html", None, "not an image"),
        ("huge.png", b"\x89PNG", "image/png", 40 * 1024 * 1024, "MB"),
    ],
)
async def test_bad_uploads_get_a_private_reason_and_queue_nothing(
    world, filename, data, content_type, size, words
):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment(filename, data, content_type, size=size)
    inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "balanced"})
    await inter.wait_for(
        lambda calls: (
            any(call.json and call.json.get("flags") == 64 for call in calls)
            or (inter.callback is not None and inter.callback.ephemeral)
        )
    )
    texts = [inter.callback.data.get("content", "")] + [m.content for m in inter.followups]
    assert any(words.lower() in text.lower() for text in texts if text), texts
    assert len(bot.queue) == 0 and not bot.queue.running()
    if size is not None or content_type == "text/html":  # refused from its metadata alone
        assert fake.cdn_file(image).downloads == 0


async def test_member_limit_refuses_at_once(world, cat_photo):
    fake, _bot, guild = world
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    await (await fake.slash(guild, admin, "dreamadmin user-limit", {"value": 1})).wait_callback()
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    first = await fake.slash(guild, bob, "dream", {"image": image, "preset": "iter-high"})
    await first.wait_original(
        lambda m: "Queued" in (m.content or "") or "Dreaming" in (m.content or "")
    )
    second = await fake.slash(guild, bob, "dream", {"image": image, "preset": "balanced"})
    callback = await second.wait_callback()
    assert callback.ephemeral and "the most this server allows" in callback.data["content"]
    # Cancel the running one with its button; only the owner's click counts.
    button = next(b for b in first.original.buttons if b["label"] == "Cancel")
    eve = fake.add_member(guild, "eve")
    refused = await fake.click(guild, eve, first.original, button["custom_id"])
    assert "isn't yours" in (await refused.wait_callback()).data["content"].lower()
    done = await fake.click(guild, bob, first.original, button["custom_id"])
    await done.wait_callback()
    await first.wait_original(lambda m: "Cancelled" in (m.content or ""), timeout=DREAM)


async def test_admin_settings_survive_a_restart_and_members_are_refused(tmp_path, executor):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings_for(tmp_path), executor)
        await fake.start_bot(bot)
        changed = await fake.slash(guild, admin, "dreamadmin queue-size", {"value": 3})
        assert "3" in (await changed.wait_callback()).data["content"]
        refused = await fake.slash(guild, bob, "dreamadmin queue-size", {"value": 50}, strict=False)
        assert "Manage Server" in (await refused.wait_callback()).data["content"]
        await bot.close()

        again = create_bot(settings_for(tmp_path), executor)
        await fake.start_bot(again)
        shown = await fake.slash(guild, admin, "dreamadmin show")
        content = (await shown.wait_callback()).data["content"]
        assert "3" in content
        assert (await again.guild_settings.get(guild.id)).queue_size == 3


async def test_late_results_go_to_the_channel_with_a_mention(tmp_path, executor, cat_photo):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings_for(tmp_path, interaction_lifetime=0.01), executor)
        await fake.start_bot(bot)
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
        await inter.wait_callback()
        fake.expire(inter)
        await fake.wait_for(
            lambda calls: any(m.files for m in fake.channel_messages(guild.text_channel)),
            timeout=DREAM,
        )
        message = next(m for m in fake.channel_messages(guild.text_channel) if m.files)
        assert f"<@{bob.id}>" in message.content


async def test_heartbeats_keep_flowing_during_a_dream(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream", {"image": image, "preset": "balanced", "iterations": 15}
    )
    await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert fake.longest_heartbeat_gap(since=inter.created) < 1.0


async def test_dream_again_dropdown_works_after_a_restart(tmp_path, executor, cat_photo):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings_for(tmp_path), executor)
        await fake.start_bot(bot)
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(
            guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 1}
        )
        result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        await bot.close()

        again = create_bot(settings_for(tmp_path), executor)  # same database, new process state
        await fake.start_bot(again)
        select = result.components[0]["components"][0]
        assert select["placeholder"] == "Dream again with…"
        picked = await fake.click(guild, bob, result, select["custom_id"], values=["iter-low"])
        redone = await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        assert "iter-low" in redone.embeds[0]["title"]
        assert fake.cdn_file(image).downloads == 2  # the original upload, fetched again


@pytest.mark.parametrize(
    ("command", "options"),
    [("dream", {"preset": "one-octave"}), ("compare", {"vary": "step=0.005,0.05"})],
)
async def test_an_image_the_engine_would_refuse_is_refused_with_the_upload(
    world, cat_photo, command, options
):
    # 100:1 decodes fine, but no engine dreams it: say so now, privately, not at its turn.
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    sliver = fake.add_attachment("sliver.png", png(Image.new("RGB", (2000, 20))), "image/png")
    inter = await fake.slash(guild, bob, command, {"image": sliver, **options})
    await inter.wait_for(
        lambda calls: any("too long and thin" in m.content for m in inter.followups)
    )
    assert all(m.ephemeral for m in inter.followups)
    assert len(bot.queue) == 0 and not bot.queue.running()
    with sqlite3.connect(bot.settings.db_path) as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)  # nothing saved
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    after = await fake.slash(
        guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 1}
    )
    await after.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)


async def test_an_attachment_larger_than_it_claims_is_refused_after_download(tmp_path, executor):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings_for(tmp_path, max_upload_bytes=200_000), executor)
        await fake.start_bot(bot)
        noise = np.random.default_rng(1).integers(0, 256, (400, 400, 3), dtype=np.uint8)
        data = png(Image.fromarray(noise))  # about 480 KB
        lying = fake.add_attachment("noise.png", data, "image/png", size=50_000)
        inter = await fake.slash(guild, bob, "dream", {"image": lying, "preset": "one-octave"})
        await inter.wait_for(lambda calls: bool(inter.followups))
        said = inter.followups[0]
        assert said.ephemeral and "the limit is 0.2 MB" in said.content, said.content
        assert len(bot.queue) == 0 and not bot.queue.running()


@pytest.mark.slow  # a worker process of its own builds the engine
async def test_a_dream_through_the_default_worker_process(tmp_path, cat_photo):
    """The default executor: the engine in a spawned, supervised worker process."""
    settings = settings_for(tmp_path, executor="process")
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings)  # builds its own ProcessExecutor, as in production
        await fake.start_bot(bot, timeout=120)
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(
            guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 2}
        )
        result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        with Image.open(io.BytesIO(result.files[0].data)) as dream:
            assert dream.size == (160, 107)
        assert bot.executor.worker_pid not in (None, os.getpid())


async def test_dream_again_still_dreams_after_the_upload_link_expired(world, cat_photo):
    """Discord's attachment links are signed and expire after about a day, while the dropdown
    under a result lasts a week: an expired link is signed again and the image dreamed."""
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    eve = fake.add_member(guild, "eve")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 1}
    )
    result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    fake.cdn_file(image).expire_links()  # a day later
    again = result.components[0]["components"][0]
    redone = await fake.click(guild, eve, result, again["custom_id"], values=["one-octave"])
    await redone.wait_callback()
    await redone.wait_for(
        lambda calls: (
            any((c.json or {}).get("flags") == 64 for c in calls)
            or (redone.original is not None and bool(redone.original.embeds))
        ),
        timeout=DREAM,
    )
    private = [c.json.get("content") for c in redone.calls if (c.json or {}).get("flags") == 64]
    assert not private, private
    fresh = await redone.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert "one-octave" in fresh.embeds[0]["title"]
    assert fake.cdn_file(image).downloads == 3  # the upload, the expired link, the fresh one
