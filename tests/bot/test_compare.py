"""What the network sees, in Discord: /compare, /layers, target:, channels:, animate:.

Over the wire against the fake Discord, with the shared real engine (random
weights, tiny images). A comparison is one job: one queue place, one progress
bar, one grid, and each variant in the gallery.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot import create_bot
from tests.bot.test_dream import DREAM, png, settings_for, world
from tests.fakediscord import FakeDiscord

__all__ = ["world"]  # a pytest fixture, imported for its side effect

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]
QUICK = {"preset": "one-octave", "iterations": 2}


def delivered(message) -> bool:
    return bool(message.embeds and message.files)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def private_answer(inter) -> str:
    callback = await inter.wait_callback()
    assert callback.ephemeral, callback
    return callback.data.get("content", "")


async def test_compare_two_steps_gives_one_grid_and_each_variant(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "compare", {"image": image, "vary": "step=0.005,0.05", "gallery": True, **QUICK}
    )
    result = await inter.wait_original(delivered, timeout=DREAM)
    embed = result.embeds[0]
    assert embed["title"].startswith("Comparison")
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields["2 variants"] == "step=0.005, step=0.05"
    grid = opened(result.files[0].data)
    assert grid.width > 2 * 160  # the input and two dreams side by side, with captions
    shown = [version.get("content") or "" for version in result.history]
    assert any("comparison of 2" in text for text in shown)

    (gallery,) = await inter.wait_followups(1, timeout=DREAM)
    names = [file.filename for file in gallery.files]
    assert [name.split("-")[:4] for name in names] == [
        ["variant", "1", "of", "2"],
        ["variant", "2", "of", "2"],
    ]
    first, second = (opened(file.data) for file in gallery.files)
    assert first.size == second.size == (160, 107)
    assert first.tobytes() != second.tobytes()  # a different step, a different dream


@pytest.mark.parametrize(
    ("vary", "caption"),
    [
        ("lap_levels=0,4", "lap_levels=0, lap_levels=4"),
        ("rotate_jitter=0,5", "rotate_jitter=0, rotate_jitter=5"),
    ],
)
async def test_compare_the_new_knobs_like_any_other(world, cat_photo, vary, caption):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "compare", {"image": image, "vary": vary, "gallery": True, **QUICK}
    )
    result = await inter.wait_original(delivered, timeout=DREAM)
    fields = {field["name"]: field["value"] for field in result.embeds[0]["fields"]}
    assert fields["2 variants"] == caption
    (gallery,) = await inter.wait_followups(1, timeout=DREAM)
    first, second = (opened(file.data) for file in gallery.files)
    assert first.tobytes() != second.tobytes()
    name = vary.split("=")[0]
    too_far = {"lap_levels": "0,9", "rotate_jitter": "0,50"}[name]
    refused = await fake.slash(guild, bob, "compare", {"image": image, "vary": f"{name}={too_far}"})
    assert f"{name} must be in [0, " in await private_answer(refused)


async def test_compare_presets_caption_each_tile_with_its_preset(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "compare",
        {"image": image, "presets": "lower-layers,upper-layers", "octaves": 1, "iterations": 2},
    )  # fmt: skip
    result = await inter.wait_original(delivered, timeout=DREAM)
    fields = {field["name"]: field["value"] for field in result.embeds[0]["fields"]}
    assert fields["2 variants"] == "lower-layers, upper-layers"
    # Named after what it ran, not after `balanced`, the unused default of `preset:`.
    assert result.embeds[0]["title"] == "Comparison: lower-layers vs upper-layers"
    shown = [version.get("content") or "" for version in result.history]
    assert any("a comparison of 2 (**lower-layers vs upper-layers**)" in text for text in shown)
    assert not any("balanced" in text for text in shown)
    assert fields["Changed from preset"] == "octaves=1, iterations=2"  # what every tile used


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, "either `vary:`"),
        ({"vary": "step=0.1,0.2", "presets": "classic,balanced"}, "not both"),
        ({"vary": "step=banana,0.1"}, "step"),
        ({"vary": "colour=1,2"}, "colour"),
        ({"vary": "seed=1,2,3,4,5,6,7,8,9"}, "8"),
        ({"presets": "classic,../../etc/passwd"}, "preset"),
        ({"presets": "balanced,dogs-dream"}, "dogs"),
        ({"presets": "lower-layers,upper-layers", "preset": "classic"}, "leave out `preset:`"),
        ({"vary": "octaves=1,3", "octaves": 2}, "`vary:` sets it for each tile"),
    ],
)
async def test_a_comparison_that_cannot_run_is_refused_privately_and_queues_nothing(
    world, cat_photo, options, words
):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(guild, bob, "compare", {"image": image, **options})
    assert words in await private_answer(inter)
    assert len(bot.queue) == 0 and not bot.queue.running()
    assert fake.cdn_file(image).downloads == 0


async def test_layers_shows_every_inception_layer_in_one_grid(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "layers", {"image": image, "preset": "one-octave", "iterations": 1}
    )
    result = await inter.wait_original(delivered, timeout=3 * DREAM)
    fields = {field["name"]: field["value"] for field in result.embeds[0]["fields"]}
    assert fields["11 variants"].split(", ") == [f"mixed{i}" for i in range(11)]
    shown = [version.get("content") or "" for version in result.history]
    assert any("variant " in text and "/11" in text for text in shown)  # one bar, all layers


async def test_target_autocomplete_and_a_misspelt_class_is_explained(world, cat_photo):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    inter = await fake.autocomplete(guild, bob, "dream", {"target": "golden"}, focused="target")
    await inter.wait_callback()
    assert "golden retriever" in [choice["value"] for choice in inter.choices]

    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    refused = await fake.slash(
        guild, bob, "dream", {"image": image, "target": "golden retreiver", **QUICK}
    )
    assert "did you mean golden retriever" in await private_answer(refused)
    assert len(bot.queue) == 0


async def test_a_targeted_dream_names_its_class(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream", {"image": image, "target": "golden retriever", **QUICK}
    )
    result = await inter.wait_original(delivered, timeout=DREAM)
    fields = {field["name"]: field["value"] for field in result.embeds[0]["fields"]}
    assert fields["Target"] == "golden retriever"


async def test_channels_out_of_range_are_refused(world, cat_photo):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream", {"image": image, "channels": "mixed4:5000", **QUICK}
    )
    assert "mixed4 has 768 channels" in await private_answer(inter)
    assert len(bot.queue) == 0


async def test_animate_posts_the_dream_forming_as_a_gif(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream",
        {"image": image, "animate": True, "channels": "mixed4:97", "layers": "none", **QUICK},
    )  # fmt: skip
    result = await inter.wait_original(delivered, timeout=DREAM)
    (animation,) = await inter.wait_followups(1, timeout=DREAM)
    (gif,) = animation.files
    assert gif.filename.endswith(".gif")
    movie = opened(gif.data)
    assert movie.is_animated and movie.n_frames > 1
    assert movie.size == opened(result.files[0].data).size


async def test_a_comparison_of_targets_does_not_name_the_base_presets_target(
    tmp_path, cat_photo, dogs_executor
):
    # dogs-pug is the one preset with a target; its comparison dreams Chihuahua and Samoyed.
    dogs = dogs_executor  # the session's: a bot does not close an executor it is given
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        await fake.start_bot(create_bot(settings_for(tmp_path, model="dogs"), dogs))
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(
            guild, bob, "compare",
            {"image": image, "preset": "dogs-pug", "vary": "target=Chihuahua,Samoyed",
             "octaves": 1, "iterations": 1},
        )  # fmt: skip
        result = await inter.wait_original(delivered, timeout=DREAM)
        fields = {field["name"]: field["value"] for field in result.embeds[0]["fields"]}
        assert "Target" not in fields, fields  # no one target was used by every tile
        assert fields["2 variants"] == "target=Chihuahua, target=Samoyed"
