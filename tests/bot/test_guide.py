"""`/dream guide:<attachment>` over the wire: a second image steers the dream, is checked
by the same upload rules as the first, and is refused privately with nothing queued.

Shares the engine, fixtures and helpers of tests/bot/test_dream.py.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.bot.test_dream import DREAM, png, world
from tests.bot.test_dream_more import private_reply

__all__ = ["world"]  # a pytest fixture, imported for its side effect

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]

QUICK = {"preset": "one-octave", "iterations": 3}


def guide_picture() -> Image.Image:
    """Stripes: nothing like the cat, so a pull towards them shows."""
    stripes = np.zeros((120, 90, 3), np.uint8)
    stripes[::8] = (250, 40, 200)
    return Image.fromarray(stripes)


def pixels_of(message) -> np.ndarray:
    return pixels_of_file(message.files[0])


def fields_of(message) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message.embeds[0]["fields"]}


async def test_a_guide_steers_the_dream_and_is_named_under_it(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    guide = fake.add_attachment("stripes.png", png(guide_picture()), "image/png")
    dreams = []
    for extra in ({}, {"guide": guide, "guide_weight": 5.0}):
        inter = await fake.slash(guild, bob, "dream", {"image": image, **QUICK, **extra})
        result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        dreams.append(result)
    plain, guided = dreams
    assert "Guide" not in fields_of(plain)
    fields = fields_of(guided)
    assert fields["Guide"] == "stripes.png"
    assert "guide_weight=5" in fields["Changed from preset"]
    assert np.abs(pixels_of(plain) - pixels_of(guided)).mean() > 0.3


async def test_the_dropdown_keeps_the_guide_asked_with_dream(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    guide = fake.add_attachment("stripes.png", png(guide_picture()), "image/png")
    inter = await fake.slash(guild, bob, "dream", {"image": image, "guide": guide})
    assert (await inter.wait_callback()).ephemeral
    menu = inter.original
    select = menu.components[0]["components"][0]
    picked = await fake.click(guild, bob, menu, select["custom_id"], values=["one-octave"])
    result = await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert fields_of(result)["Guide"] == "stripes.png"


async def test_a_bad_guide_is_refused_privately_and_nothing_is_queued(world, cat_photo):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    good = fake.add_attachment("stripes.png", png(guide_picture()), "image/png")
    whole = png(guide_picture())
    cases = [
        # Refused at once, from what Discord says of the file:
        ({"guide": fake.add_attachment("notes.txt", b"my notes", "text/plain")}, "not an image"),
        ({"guide": fake.add_attachment("big.png", whole, "image/png", size=10**9)}, "the limit"),
        ({"guide_weight": 2.0}, "attach one as guide"),
        ({"guide": good, "layers": "none", "channels": "mixed4:97"}, "matched at the weighted"),
        # Refused after the download, from its bytes:
        ({"guide": fake.add_attachment("cut.png", whole[: len(whole) // 2], "image/png")},
         "damaged"),
        ({"guide": fake.add_attachment("gone.png", whole, "image/png", status=404)}, "404"),
    ]  # fmt: skip
    for extra, words in cases:
        inter = await fake.slash(guild, bob, "dream", {"image": image, **QUICK, **extra})
        text = await private_reply(inter, timeout=DREAM)
        assert words in text, (extra, text)
        assert text.startswith(("guide: ", "guide_weight: ")), text
        assert len(bot.queue) == 0 and not bot.queue.running()
        assert not bot.queue.jobs_of(bob.id)


async def test_compare_grows_the_guide_in_every_tile_and_varies_its_weight(world, cat_photo):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    guide = fake.add_attachment("stripes.png", png(guide_picture()), "image/png")
    asked = {"image": image, "vary": "guide_weight=1,5", **QUICK}
    refused = await fake.slash(guild, bob, "compare", asked)  # nothing to weigh
    assert "attach one as guide" in await private_reply(refused)
    assert len(bot.queue) == 0 and not bot.queue.running()
    inter = await fake.slash(guild, bob, "compare", {**asked, "guide": guide, "gallery": True})
    result = await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    fields = fields_of(result)
    assert fields["2 variants"] == "guide_weight=1, guide_weight=5"
    assert fields["Guide"] == "stripes.png"
    (gallery,) = await inter.wait_followups(1, timeout=DREAM)
    light, strong = (pixels_of_file(file) for file in gallery.files)
    assert np.abs(light - strong).mean() > 0.3  # a stronger pull, another dream


def pixels_of_file(file) -> np.ndarray:
    with Image.open(io.BytesIO(file.data)) as dreamed:
        return np.asarray(dreamed.convert("RGB"), dtype=np.int16)
