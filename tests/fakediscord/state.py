"""What the fake Discord knows and has seen: guilds, messages, files, calls.

No networking here. ``rest.py``, ``gateway.py`` and ``cdn.py`` read and
change this state; tests read it (and build it with the ``add_*`` methods).
``emit`` is the one hook out: the server overrides it to tell a connected
bot about things added after it logged in (GUILD_CREATE, MESSAGE_CREATE...).
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import secrets
import time
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

from .commands import CommandRegistry
from .models import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    Call,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    Message,
    Snowflakes,
    StoredFile,
)
from .payloads import guild_create_payload, member_payload

if TYPE_CHECKING:
    from .interaction import FakeInteraction
    from .spec import Violation

T = TypeVar("T")
MiB = 1024 * 1024


class State:
    def __init__(
        self,
        *,
        bot_name: str = "DreamBot",
        attachment_size_limit: int = 10 * MiB,
        ack_deadline: float | None = 3.0,
        token_lifetime: float = 15 * 60.0,
        locale: str = "en-US",
        bot_token: str | None = None,
    ) -> None:
        self.ids = Snowflakes()
        self.bot_token = bot_token  # None: any token logs in; else others get 401
        self.started = time.monotonic()
        self.base_url = ""  # http://127.0.0.1:PORT once the server listens
        self.attachment_size_limit = attachment_size_limit
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.locale = locale

        self.bot_user = FakeUser(self.ids.next(), bot_name, bot=True)
        self.owner = FakeUser(self.ids.next(), "owner")
        self.application_id = self.bot_user.id  # true of every modern Discord application
        self.registry = CommandRegistry(self.ids, self.application_id)

        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.users: dict[int, FakeUser] = {u.id: u for u in (self.bot_user, self.owner)}
        self.messages: dict[int, Message] = {}
        self.files: dict[int, StoredFile] = {}
        self.interactions: dict[str, FakeInteraction] = {}  # by token

        self.calls: list[Call] = []
        self.unexpected_calls: list[Call] = []  # routes the fake does not know: probably a bug
        self.spec_violations: list[Violation] = []  # bodies Discord's OpenAPI document refuses
        self.cdn_requests: list[tuple[float, str, int]] = []  # (t, path, status)
        self.heartbeat_times: list[float] = []
        self._waiters: list[asyncio.Future[None]] = []

    # -- building the world ------------------------------------------------

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        channels: Iterable[str] = ("general",),
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        locale: str | None = None,
        with_bot: bool = True,
    ) -> FakeGuild:
        """A guild with @everyone, the bot as a member (with its own role), and text channels.

        ``with_bot=False``: a server the bot was never added to; the bot hears nothing of
        it (no GUILD_CREATE) and cannot reach its channels (403 Missing Access), and only
        commands a member installed to their account can be used there.
        """
        guild_id = self.ids.next()
        guild = FakeGuild(
            id=guild_id, name=name, owner_id=self.owner.id, locale=locale or self.locale
        )
        guild.roles.append(FakeRole(guild_id, "@everyone", everyone_permissions))
        bot_role = FakeRole(
            self.ids.next(),
            self.bot_user.name,
            bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        members = [(self.owner, [])]
        if with_bot:
            guild.roles.append(bot_role)
            members.append((self.bot_user, [bot_role.id]))
        for user, roles in members:
            guild.members[user.id] = FakeMember(user, guild_id, roles)
        for position, channel_name in enumerate(channels):
            channel = FakeChannel(self.ids.next(), channel_name, guild_id, position=position)
            guild.channels.append(channel)
            self.channels[channel.id] = channel
        self.guilds[guild_id] = guild
        if with_bot:
            self.emit("GUILD_CREATE", guild_create_payload(guild))
        return guild

    def add_channel(
        self, guild: FakeGuild, name: str, *, type: int = 0, bot_can_send: bool = True
    ) -> FakeChannel:
        """Another channel; ``bot_can_send=False`` makes the bot's posts there fail with 403."""
        channel = FakeChannel(
            self.ids.next(),
            name,
            guild.id,
            type=type,
            position=len(guild.channels),
            bot_can_send=bot_can_send,
        )
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        self.emit("CHANNEL_CREATE", channel.to_payload())
        return channel

    def add_member(
        self,
        guild: FakeGuild,
        name: str,
        *,
        permissions: int = 0,
        nick: str | None = None,
        bot: bool = False,
        locale: str | None = None,
    ) -> FakeMember:
        """A member; ``permissions`` (e.g. 0x20 Manage Server) come from a role of their own,
        on top of @everyone's. ``locale`` (e.g. "de") is their client's language: their
        interactions carry it; None: the fake's ``locale``."""
        user = FakeUser(self.ids.next(), name, bot=bot, locale=locale)
        self.users[user.id] = user
        member = FakeMember(user, guild.id, nick=nick)
        if permissions:
            role = FakeRole(self.ids.next(), f"{name}-role", permissions, position=len(guild.roles))
            guild.roles.append(role)
            member.role_ids.append(role.id)
            self.emit("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.to_payload()})
        guild.members[user.id] = member
        self.emit("GUILD_MEMBER_ADD", member_payload(guild, member) | {"guild_id": str(guild.id)})
        return member

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        for channel in self.channels.values():
            if (
                channel.type == 1
                and channel.recipient is not None
                and channel.recipient.id == user.id
            ):
                return channel
        channel = FakeChannel(self.ids.next(), "", None, type=1, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        size: int | None = None,
        stall: float = 0.0,
        status: int = 200,
        description: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> dict[str, Any]:
        """Put bytes on the CDN; returns the attachment object a user's upload would have.

        ``size`` may lie (the CDN still serves ``data``); ``stall`` delays the
        download by that many seconds; ``status`` other than 200 fails it.
        Change these later through ``cdn_file(att)``.
        """
        stored = self.store_file(filename, data, content_type, description=description)
        stored.size = len(data) if size is None else size
        stored.stall, stored.status, stored.width, stored.height = stall, status, width, height
        return stored.attachment()

    def store_file(
        self,
        filename: str,
        data: bytes,
        content_type: str | None,
        *,
        description: str | None = None,
    ) -> StoredFile:
        assert self.base_url, (
            "start the FakeDiscord (async with FakeDiscord() as fake) before adding files"
        )
        filename = re.sub(r"\s", "_", filename)  # Discord renames "my cat.png" to "my_cat.png"
        file_id = self.ids.next()
        path = f"/attachments/{self.ids.next()}/{file_id}/{filename}"
        signature = secrets.token_hex(16)
        query = _signed_query(signature)
        stored = StoredFile(
            id=file_id,
            filename=filename,
            data=data,
            content_type=content_type or mimetypes.guess_type(filename)[0],
            url=f"{self.base_url}{path}{query}",
            proxy_url=f"{self.base_url}/media{path}{query}",
            size=len(data),
            description=description,
        )
        stored.signatures.add(signature)
        self.files[file_id] = stored
        return stored

    def refresh_link(self, url: str) -> str:
        """A freshly signed link to the file `url` names (unknown files: `url` as is)."""
        match = re.search(r"/attachments/\d+/(\d+)/([^/?]+)", url)
        stored = self.files.get(int(match.group(1))) if match else None
        if stored is None:
            return url
        signature = secrets.token_hex(16)
        stored.signatures.add(signature)
        return url.split("?", 1)[0] + _signed_query(signature)

    def cdn_file(self, attachment: dict[str, Any] | int) -> StoredFile:
        """The CDN entry of an attachment: tweak stall/status/size, read downloads."""
        file_id = int(attachment["id"]) if isinstance(attachment, dict) else attachment
        return self.files[file_id]

    def add_message(
        self,
        channel: FakeChannel,
        author: FakeMember | FakeUser,
        content: str = "",
        *,
        attachments: Iterable[dict[str, Any]] = (),
        embeds: Iterable[dict[str, Any]] = (),
    ) -> Message:
        """A message a user posted (e.g. the target of a "Dream this image" context menu)."""
        user = author.user if isinstance(author, FakeMember) else author
        message = self.new_message(channel, user, via="user")
        message.content, message.embeds = content, list(embeds)
        message.files = [self.cdn_file(a) for a in attachments]
        message.snapshot()
        self.emit("MESSAGE_CREATE", message.to_payload())
        return message

    def new_message(self, channel: FakeChannel, author: FakeUser, *, via: str) -> Message:
        message = Message(
            id=self.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            via=via,
        )
        self.messages[message.id] = message
        return message

    # -- reading it back ---------------------------------------------------

    def message(self, message_id: int | str) -> Message:
        return self.messages[int(message_id)]

    def channel_messages(self, channel: FakeChannel | int) -> list[Message]:
        """Messages the bot posted straight to a channel (``POST /channels/{id}/messages``)."""
        channel_id = channel if isinstance(channel, int) else channel.id
        return [
            m for m in self.messages.values() if m.channel_id == channel_id and m.via == "channel"
        ]

    def commands(self, guild: FakeGuild | None = None) -> list[dict[str, Any]]:
        """The commands registered (synced) globally, or for ``guild``."""
        return self.registry.list(guild.id if guild else None)

    def register_commands(
        self, payloads: list[dict[str, Any]], guild: FakeGuild | None = None
    ) -> None:
        """Register commands without the bot syncing.

        E.g. ``[c.to_dict(bot.tree) for c in bot.tree.get_commands()]``.
        """
        self.registry.overwrite(guild.id if guild else None, payloads)

    @property
    def heartbeats(self) -> int:
        """Heartbeats received (and acked) on the gateway; they stop while the bot's loop blocks."""
        return len(self.heartbeat_times)

    def longest_heartbeat_gap(self, since: float = 0.0) -> float:
        """The longest stretch without a heartbeat between ``since`` (a ``t()``) and now.

        With ``heartbeat_interval=0.05``, a gap near a second means the bot
        blocked its event loop (the keep-alive thread could not get a send in).
        """
        times = [since, *(t for t in self.heartbeat_times if t >= since), self.t()]
        return max(b - a for a, b in pairwise(times))

    def t(self) -> float:
        return time.monotonic() - self.started

    # -- recording and waiting ---------------------------------------------

    def record(self, call: Call) -> None:
        self.calls.append(call)
        if call.token is not None and call.token in self.interactions:
            self.interactions[call.token].calls.append(call)
        self.changed()

    def changed(self) -> None:
        """Wake every waiter so it re-checks its condition."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_until(
        self, check: Callable[[], T], timeout: float, what: str, calls: list[Call] | None = None
    ) -> T:
        """Wait until ``check()`` is truthy and return it, or fail with the recent calls."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self.describe_timeout(what, timeout, calls))
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def wait_for(
        self,
        predicate: Callable[[list[Call]], Any],
        timeout: float = 5.0,
        what: str = "a condition",
    ) -> list[Call]:
        """Wait until ``predicate(fake.calls)`` holds."""
        await self.wait_until(lambda: predicate(self.calls), timeout, what)
        return self.calls

    async def wait_heartbeats(self, count: int, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` heartbeats have been received in total."""
        await self.wait_until(
            lambda: self.heartbeats >= count,
            timeout,
            f"{count} heartbeats (have {self.heartbeats})",
        )

    def describe_timeout(self, what: str, timeout: float, calls: list[Call] | None = None) -> str:
        lines = [f"timed out after {timeout}s waiting for {what}"]
        if calls is not None:
            lines.append("calls for this interaction:")
            lines += [f"  {c.summary()}" for c in calls] or ["  (none)"]
        lines.append("most recent calls:")
        lines += [f"  {c.summary()}" for c in self.calls[-15:]] or ["  (none)"]
        if self.unexpected_calls:
            lines.append("calls to routes the fake does not know:")
            lines += [f"  {c.summary()}" for c in self.unexpected_calls]
        return "\n".join(lines)

    def emit(self, name: str, data: dict[str, Any]) -> None:
        """Overridden by the server to dispatch to a connected bot."""


def _signed_query(signature: str) -> str:
    """Real CDN links are signed (?ex=&is=&hm=); code that parses them must cope."""
    now = int(time.time())
    return f"?ex={now + 86400:x}&is={now:x}&hm={signature}&"
