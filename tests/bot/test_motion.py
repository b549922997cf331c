"""Moving dreams over the wire: `/dream zoom:`, a clip uploaded to `/dream`, their limits
(`/dreamadmin clip-*`) and their refusals, against the fake Discord.

Shares the engine, fixtures and helpers of tests/bot/test_dream.py; each reply's file is
decoded (PyAV, Pillow) and its frames counted.
"""

from __future__ import annotations

import io

import av
import pytest
from PIL import Image

from dream_engine.media.clip_encoding import encode_clip
from tests.bot.test_dream import DREAM, png, world
from tests.bot.test_dream_more import private_reply, text_of
from tests.fakediscord import MANAGE_GUILD
from tests.media.test_clips import moving

__all__ = ["world"]  # a pytest fixture, imported for its side effect

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]

QUICK = {"preset": "one-octave", "iterations": 2}


def delivered(message) -> bool:
    return bool(message.embeds and message.files)


def mp4_frames(data: bytes) -> tuple[int, float, tuple[int, int]]:
    """(frames, fps, size) of an MP4 as a player sees it; the codec must be H.264."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [frame.to_image() for frame in container.decode(stream)]
        return len(frames), float(stream.average_rate), frames[0].size


def fields_of(message) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message.embeds[0]["fields"]}


async def test_a_zoom_of_24_frames_comes_back_as_a_playable_mp4(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream", {"image": image, **QUICK, "zoom": 24, "rotate": 2.0}
    )
    result = await inter.wait_original(delivered, timeout=DREAM)
    (clip,) = result.files
    assert clip.filename == "dream.mp4"
    assert mp4_frames(clip.data) == (24, 12.0, (160, 106))
    assert fields_of(result)["Frames"] == "24 at 12 fps, zoom 1.05x a frame"
    seen = [version.get("content") or "" for version in result.history]
    assert any("a zoom of 24 frames" in text for text in seen)
    assert any("frame " in text and "/24" in text for text in seen)  # the bar counts frames


async def test_a_two_second_clip_is_dreamed_frame_by_frame_as_mp4_or_gif(world):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    upload = encode_clip(moving(16), 8.0, "mp4")  # 2 s at 8 fps
    video = fake.add_attachment("walk.mp4", upload, "video/mp4")
    inter = await fake.slash(guild, bob, "dream", {"image": video, **QUICK, "blend": 0.5})
    result = await inter.wait_original(delivered, timeout=DREAM)
    assert mp4_frames(result.files[0].data) == (16, 8.0, (160, 120))
    assert fields_of(result)["Frames"] == "16 at 8 fps, blend 0.5"
    animated = fake.add_attachment("walk.gif", upload, "video/mp4")
    inter = await fake.slash(guild, bob, "dream", {"image": animated, **QUICK, "format": "gif"})
    result = await inter.wait_original(delivered, timeout=DREAM)
    assert result.files[0].filename == "dream.gif"
    with Image.open(io.BytesIO(result.files[0].data)) as shown:
        assert shown.n_frames == 16 and abs(shown.info["duration"] - 125) <= 5


async def test_cancel_mid_zoom_posts_the_frames_done(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    inter = await fake.slash(
        guild, bob, "dream", {"image": image, "preset": "one-octave", "iterations": 40, "zoom": 48}
    )
    running = await inter.wait_original(lambda m: "frame 3/48" in text_of(m), timeout=DREAM)
    button = running.components[0]["components"][0]
    await fake.click(guild, bob, running, button["custom_id"])
    result = await inter.wait_original(delivered, timeout=DREAM)
    frames, _, _ = mp4_frames(result.files[0].data)
    assert 2 <= frames < 48
    assert f"cancelled after {frames} of 48 frames" in fields_of(result)["Notes"]


async def test_bad_motion_input_is_refused_privately_and_nothing_is_queued(world, cat_photo):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    still = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    whole = encode_clip(moving(12), 8.0, "mp4")
    long_one = encode_clip(moving(12), 1.0, "mp4")  # 12 s at 1 fps
    cases = [
        ({"image": fake.add_attachment("notes.mp4", b"not a video at all", "video/mp4")},
         "not an image"),
        ({"image": fake.add_attachment("film.avi", whole, "video/x-msvideo")}, "don't read"),
        ({"image": fake.add_attachment("big.mp4", whole, "video/mp4", size=10**9)}, "the limit"),
        ({"image": fake.add_attachment("cut.mp4", whole[: len(whole) // 3], "video/mp4")},
         "cut off"),
        ({"image": fake.add_attachment("slow.mp4", long_one, "video/mp4")},
         "lasts 12.0 s; the limit here is 10 s"),
        ({"image": fake.add_attachment("walk.mp4", whole, "video/mp4"), "zoom": 10},
         "this is a clip, which moves already"),
        ({"image": fake.add_attachment("walk.mp4", whole, "video/mp4"), "gallery": True},
         "leave out gallery"),
        ({"image": still, "blend": 0.5}, "this is a still picture"),
        ({"image": still, "zoom_factor": 1.2}, "give zoom:24 (frames) too"),
        ({"image": still, "zoom": 100}, "zoom: 100 frames; the limit here is 48"),
    ]  # fmt: skip
    for extra, words in cases:
        inter = await fake.slash(guild, bob, "dream", {**QUICK, **extra})
        text = await private_reply(inter, timeout=DREAM)
        assert words in text, (extra, text)
        assert len(bot.queue) == 0 and not bot.queue.running()
    # An admin's limit is the one that counts: 8 frames here, then a 12-frame clip is too many.
    said = await fake.slash(guild, admin, "dreamadmin clip-frames", {"value": 8})
    assert "8 frames" in (await said.wait_callback()).data["content"]
    clip = fake.add_attachment("walk.mp4", whole, "video/mp4")
    inter = await fake.slash(guild, bob, "dream", {"image": clip, **QUICK})
    assert "has 12 frames; the limit here is 8" in await private_reply(inter, timeout=DREAM)
    assert len(bot.queue) == 0


async def test_dream_this_image_on_a_posted_video_dreams_the_clip(world):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    eve = fake.add_member(guild, "eve")
    video = fake.add_attachment("walk.mp4", encode_clip(moving(6), 8.0, "mp4"), "video/mp4")
    post = fake.add_message(guild.text_channel, eve, "look", attachments=[video])
    inter = await fake.context_menu(guild, bob, "Dream this image", post)
    assert (await inter.wait_callback()).ephemeral
    menu = inter.original
    select = menu.components[0]["components"][0]
    picked = await fake.click(guild, bob, menu, select["custom_id"], values=["one-octave"])
    result = await picked.wait_original(delivered, timeout=DREAM)
    assert mp4_frames(result.files[0].data)[:2] == (6, 8.0)
