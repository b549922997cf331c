"""The fake Discord checks REST bodies against Discord's own OpenAPI document.

First ``tests/fakediscord/spec.py`` on its own (which bodies pass, which fail and
with which field, the two leniencies, undocumented endpoints), then over the
wire: the real discord.py client sends a bad body, gets Discord's 400 Invalid
Form Body naming the field, and a violation nobody takes fails the test.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord.http import Route

from tests.fakediscord import FakeDiscord, FakeGuild
from tests.fakediscord.spec import STATS, Stats, Violation, check, spec

MESSAGES = "/channels/123/messages"
COMMANDS = "/applications/1/commands"


def command_with_channel_types(*types: int) -> list[dict[str, Any]]:
    option = {"type": 7, "name": "where", "description": "A channel", "channel_types": list(types)}
    return [{"type": 1, "name": "post", "description": "Post it", "options": [option]}]


# -- the document on its own ----------------------------------------------------


def checked(method: str, path: str, body: Any, stats: Stats | None = None) -> Violation | None:
    """``check``, counted apart: the session's summary counts what the bots sent."""
    return check(method, path, body, stats if stats is not None else Stats())


def test_the_document_loads_once_and_fast() -> None:
    started = time.perf_counter()
    assert spec() is spec()
    assert time.perf_counter() - started < 2.0
    assert STATS.load_seconds < 2.0


@pytest.mark.parametrize(
    "body",
    [
        {"content": "hello"},
        {"content": "hi", "embeds": [{"title": "Dream", "fields": [{"name": "a", "value": "b"}]}]},
        {"content": "with a file", "attachments": [{"id": 0, "filename": "dream.png"}]},
        {"attachments": [{"id": "0", "filename": "dream.png"}]},
    ],
    ids=["content", "embed", "integer-snowflake", "string-snowflake"],
)
def test_a_valid_message_passes(body: dict[str, Any]) -> None:
    assert checked("POST", MESSAGES, body) is None


@pytest.mark.parametrize(
    ("body", "field", "keyword"),
    [
        ({"content": 5}, "content", "type"),
        ({"embeds": [{"title": ["a", "list"]}]}, "embeds.0.title", "type"),
        ({"attachments": [{"filename": "dream.png"}]}, "attachments.0.id", "required"),
        ({"attachments": [{"id": "not-a-snowflake"}]}, "attachments.0.id", "pattern"),
        ({"tts": "yes"}, "tts", "type"),
    ],
)
def test_a_wrong_body_names_the_field(body: dict[str, Any], field: str, keyword: str) -> None:
    violation = checked("POST", MESSAGES, body)
    assert violation is not None
    assert (violation.method, violation.template) == ("POST", "/channels/{channel_id}/messages")
    assert (violation.field, violation.keyword) == (field, keyword)
    assert not violation.is_limit
    assert field in str(violation)


def test_the_error_is_discords_invalid_form_body() -> None:
    violation = checked("POST", MESSAGES, {"embeds": [{"title": 7}]})
    assert violation is not None
    error = violation.api_error()
    assert (error.status, error.body["code"], error.body["message"]) == (
        400,
        50035,
        "Invalid Form Body",
    )
    (entry,) = error.body["errors"]["embeds"]["0"]["title"]["_errors"]
    assert entry["code"] == "BASE_TYPE_BAD_TYPE" and "7" in entry["message"]


def test_a_limit_is_refused_in_discords_words_but_is_not_a_shape_error() -> None:
    violation = checked("POST", MESSAGES, {"content": "x" * 4001})
    assert violation is not None and violation.is_limit
    assert (violation.field, violation.message) == ("content", "Must be 4000 or fewer in length.")


def test_inside_a_union_the_branch_the_body_meant_is_named() -> None:
    callback = "/interactions/1/a-token/callback"
    assert checked("POST", callback, {"type": 5}) is None
    bad_message = checked("POST", callback, {"type": 4, "data": {"embeds": [{"title": ["x"]}]}})
    assert bad_message is not None and bad_message.field == "data.embeds.0.title"
    button = {"type": 2, "style": 1, "label": 5, "custom_id": "again"}
    row = checked("POST", MESSAGES, {"components": [{"type": 1, "components": [button]}]})
    assert row is not None and row.field == "components.0.components.0.label"


def test_channel_type_16_guild_media_is_a_channel_type() -> None:
    assert checked("PUT", COMMANDS, command_with_channel_types(0, 15, 16)) is None
    violation = checked("PUT", COMMANDS, command_with_channel_types(0, 99))
    assert violation is not None and violation.field == "0.options.0.channel_types.1"


def test_a_literal_path_segment_beats_a_parameter() -> None:
    original = spec().operation("PATCH", "/webhooks/1/a-token/messages/@original")
    other = spec().operation("PATCH", "/webhooks/1/a-token/messages/2")
    assert original is not None and original.template.endswith("/messages/@original")
    assert other is not None and other.template.endswith("/messages/{message_id}")


def test_an_undocumented_endpoint_is_recorded_not_failed() -> None:
    stats = Stats()
    assert checked("POST", "/attachments/refresh-urls", {"attachment_urls": ["u"]}, stats) is None
    assert checked("POST", "/channels/123/not-a-route/456", {"x": 1}, stats) is None
    assert stats.unknown == {
        "POST /attachments/refresh-urls",
        "POST /channels/{id}/not-a-route/{id}",
    }
    assert (stats.checked, stats.violations) == (0, 0)


def test_only_bodies_are_checked_and_counted() -> None:
    stats = Stats()
    assert checked("GET", MESSAGES, {"content": 5}, stats) is None
    assert checked("POST", MESSAGES, None, stats) is None
    assert stats.checked == 0
    assert checked("POST", MESSAGES, {"content": "counted"}, stats) is None
    assert checked("POST", MESSAGES, {"content": 5}, stats) is not None
    assert (stats.checked, stats.violations) == (2, 1)
    assert stats.snapshot()["checked"] == 2


# -- over the wire ----------------------------------------------------------------


@pytest_asyncio.fixture
async def connected() -> AsyncIterator[tuple[FakeDiscord, discord.Client, FakeGuild]]:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        client = discord.Client(intents=discord.Intents.default())
        await fake.start_bot(client)
        yield fake, client, guild


def channel_route(guild: FakeGuild) -> Route:
    return Route("POST", "/channels/{channel_id}/messages", channel_id=guild.text_channel.id)


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_the_client_gets_invalid_form_body_naming_the_field(
    connected: tuple[FakeDiscord, discord.Client, FakeGuild],
) -> None:
    fake, client, guild = connected
    with pytest.raises(discord.HTTPException) as raised:
        await client.http.request(channel_route(guild), json={"content": 5})
    assert (raised.value.status, raised.value.code) == (400, 50035)
    assert "In content" in str(raised.value)
    (violation,) = fake.take_spec_violations()
    assert (violation.template, violation.field) == ("/channels/{channel_id}/messages", "content")
    assert not fake.channel_messages(guild.text_channel)


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_a_multipart_payload_json_is_checked_too(
    connected: tuple[FakeDiscord, discord.Client, FakeGuild],
) -> None:
    fake, client, guild = connected
    channel = client.get_channel(guild.text_channel.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("a file", file=discord.File(io.BytesIO(b"png"), filename="a.png"))
    assert sent.attachments and not fake.spec_violations  # discord.py's own multipart passes

    payload = {"embeds": [{"title": ["not", "a", "string"]}], "attachments": [{"id": 0}]}
    form = [
        {"name": "payload_json", "value": json.dumps(payload)},
        {"name": "files[0]", "value": b"png", "filename": "a.png"},
    ]
    with pytest.raises(discord.HTTPException) as raised:
        await client.http.request(channel_route(guild), form=form)
    assert raised.value.code == 50035 and "In embeds.0.title" in str(raised.value)
    (violation,) = fake.take_spec_violations()
    assert violation.field == "embeds.0.title"


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_a_violation_nobody_took_fails_the_test_when_the_fake_stops() -> None:
    with pytest.raises(AssertionError) as raised:
        async with FakeDiscord() as fake:
            guild = fake.add_guild("Art")
            url = f"{fake.base_url}/api/v10/channels/{guild.text_channel.id}/messages"
            async with (
                aiohttp.ClientSession(headers={"Authorization": "Bot any"}) as session,
                session.post(url, json={"content": "ok", "tts": "loud"}) as response,
            ):
                assert response.status == 400
    assert "POST /channels/{channel_id}/messages: tts:" in str(raised.value)


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_a_refused_limit_does_not_fail_the_test() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        url = f"{fake.base_url}/api/v10/channels/{guild.text_channel.id}/messages"
        async with (
            aiohttp.ClientSession(headers={"Authorization": "Bot any"}) as session,
            session.post(url, json={"content": "x" * 4001}) as response,
        ):
            assert response.status == 400
            assert (await response.json())["code"] == 50035
        assert not fake.spec_violations
