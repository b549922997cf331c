"""A local fake of Discord that the real discord.py 2.7 client connects to.

End-to-end tests drive the bot over the wire, with no mocks: an aiohttp server
on 127.0.0.1 (free port) serves the REST API, the gateway websocket and an
attachment CDN, records every call, and lets the test inject interactions.

Tour::

    from tests.fakediscord import FakeDiscord

    async with FakeDiscord() as fake:                 # patches discord.py's Route.BASE and
                                                      # DEFAULT_GATEWAY; restores them on exit
        guild = fake.add_guild("Art")                 # FakeGuild: .id, .channels, .text_channel
        admin = fake.add_member(guild, "ada", permissions=0x20)   # Manage Server
        bob = fake.add_member(guild, "bob")
        await fake.start_bot(bot)                     # login + connect + wait for on_ready
        att = fake.add_attachment("cat.png", png_bytes)   # attachment dict, served by the CDN

        inter = await fake.slash(guild, bob, "dream", {"image": att, "preset": "balanced"})
        cb = await inter.wait_callback()              # Callback: .type (5: defer), .data, .delay
        msg = await inter.wait_original(lambda m: "Done" in m.content)
        msg.files[0].data                             # the bytes the bot uploaded
        await inter.wait_followups(1)
        clicked = await fake.click(guild, bob, inter.followups[0], "again")
        print(fake.transcript(inter))                 # the conversation as the user saw it

Building the world (``State``): ``add_guild``, ``add_channel(guild, name,
bot_can_send=...)``, ``add_member(guild, name, permissions=...)``,
``add_attachment(filename, data, content_type, size=, stall=, status=)``,
``cdn_file(att)`` (change ``stall``/``status``/``cut_off`` later, count ``downloads``),
``add_message(channel, author, content, attachments=[...])``,
``register_commands(payloads, guild)`` if the bot does not sync. ``fake.owner`` owns
every guild and the application. If a test connects the bot itself
(``await bot.login(...)``, ``create_task(bot.connect())``), it calls
``await fake.wait_ready(bot)`` right after; the fake closes the bot either way.

Injecting: ``slash``, ``autocomplete(..., focused=)``, ``context_menu(guild,
member, name, target_message_or_user)``, ``click(guild, member, message,
custom_id, values)``, ``submit_modal(inter, {custom_id: value})``. Options are
typed from the *synced* command; ``strict=True`` (default) refuses what the
Discord client would not send (missing/unknown options, bad choices, a
command hidden by ``default_member_permissions``, a disabled button).

Reading: ``inter.callback``, ``inter.original`` (``Message`` after every edit:
``content``, ``embeds``, ``components``, ``buttons``, ``files``, ``history``),
``inter.followups``, ``inter.calls``, ``inter.choices`` (autocomplete),
``inter.modal``; ``fake.calls`` (every REST ``Call``: method, path, route,
query, json, files, status, response, t), ``fake.unexpected_calls``,
``fake.channel_messages(channel)``, ``fake.commands(guild)``,
``fake.heartbeats``, ``fake.longest_heartbeat_gap(since=inter.created)`` (near a
second with ``heartbeat_interval=0.05`` means the bot blocked its loop),
``fake.cdn_requests``, ``fake.gateway.identify`` (intents), ``fake.gateway.resumes``.
``fake.emit(event, data)`` sends any other gateway event.

Waiting (raise a readable ``AssertionError`` with the recent calls on
timeout): ``inter.wait_callback``, ``inter.wait_for(pred(calls))``,
``inter.wait_original(pred(message))``, ``inter.wait_followups(n)``,
``fake.wait_for(pred(calls))``, ``fake.wait_heartbeats(n)``.

Failures on purpose: ``fake.expire(inter)`` (webhook calls then answer 401
"Invalid Webhook Token", 50027), ``fake.inject_error(method, path_glob,
status, body, times=)`` (429s come with ``Via`` + ``retry_after`` so
discord.py retries), ``FakeDiscord(ack_deadline=3.0)`` (a late callback gets
404 "Unknown interaction", as on Discord), ``attachment_size_limit`` (uploads
over it get 413), ``fake.gateway.reconnect()`` (op 7; the bot resumes).

Every REST body is checked against Discord's own OpenAPI document (``spec.py``):
one it refuses answers 400 Invalid Form Body (code 50035, the field in
``errors``). Unless it only broke a limit (a length, a count: the bot may catch
that 400 and say so), it lands in ``fake.spec_violations``; any left when the
fake stops fail the test, naming endpoint and field. A test that sends one on
purpose takes them with ``fake.take_spec_violations()``.

Discord behaviour worth knowing, modelled here: the first follow-up after a
"thinking" defer replaces the placeholder instead of posting a new message
(so it is both ``inter.original`` and ``inter.followups[0]``); for a
component interaction @original is the clicked message; message limits
(2000 chars, embeds, 5 action rows, unique custom_ids, 25 choices) answer
400 Invalid Form Body like Discord.
"""

from .interaction import FakeInteraction
from .models import (
    ADMINISTRATOR,
    MANAGE_GUILD,
    Call,
    Callback,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    Message,
    StoredFile,
    Upload,
)
from .server import FakeDiscord

__all__ = [
    "ADMINISTRATOR",
    "MANAGE_GUILD",
    "Call",
    "Callback",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "Message",
    "StoredFile",
    "Upload",
]
