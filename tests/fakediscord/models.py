"""The fake's world: plain dataclasses for what Discord knows about.

Everything here is inert data plus tiny helpers; the simple entities know
their own wire JSON (``to_payload``), composites are built in ``payloads.py``,
and the route modules (``rest.py``, ``webhooks.py``, via ``messages.py``)
change them in answer to REST calls. A test just reads ``message.content``.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000

# Permission bits the fake cares about (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
ALL_PERMISSIONS = (1 << 51) - 1

DEFAULT_EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
)
DEFAULT_BOT_PERMISSIONS = DEFAULT_EVERYONE_PERMISSIONS

# Message flags.
SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
LOADING = 1 << 7
IS_COMPONENTS_V2 = 1 << 15

CALLBACK_NAMES = {
    1: "pong",
    4: "message",
    5: "deferred message (thinking)",
    6: "deferred update",
    7: "update message",
    8: "autocomplete result",
    9: "modal",
}


class Snowflakes:
    """Issues increasing, realistic snowflake ids (timestamp in the top bits).

    Realistic ids matter: discord.py derives ``created_at`` from them and some
    code sorts by id.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class FakeUser:
    id: int
    name: str
    bot: bool = False
    global_name: str | None = None
    locale: str | None = None  # the Discord client's language; None: the fake's default

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            payload["bot"] = True
        return payload


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    bot_id: int | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            payload["tags"] = {"bot_id": str(self.bot_id)}
        return payload


@dataclass
class FakeChannel:
    id: int
    name: str
    guild_id: int | None
    type: int = 0  # 0 text, 1 DM, 2 voice, 4 category, 5 news, 11 public thread
    position: int = 0
    bot_can_send: bool = True
    recipient: FakeUser | None = None  # DMs only

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def to_payload(self, *, permissions: int | None = None) -> dict[str, Any]:
        """The channel object; ``permissions`` is set on interaction payloads only."""
        payload: dict[str, Any] = {"id": str(self.id), "type": self.type, "flags": 0}
        if self.type == 1:
            payload["recipients"] = [self.recipient.to_payload()] if self.recipient else []
            payload["last_message_id"] = None
        else:
            payload.update(
                name=self.name,
                guild_id=str(self.guild_id),
                position=self.position,
                permission_overwrites=[],
                parent_id=None,
                nsfw=False,
                topic=None,
                rate_limit_per_user=0,
                last_message_id=None,
            )
        if permissions is not None:
            payload["permissions"] = str(permissions)
        return payload


@dataclass
class FakeMember:
    user: FakeUser
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def mention(self) -> str:
        return self.user.mention

    @property
    def locale(self) -> str | None:
        """The member's client language, which is the user's (it follows them to DMs)."""
        return self.user.locale


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    channels: list[FakeChannel] = field(default_factory=list)
    roles: list[FakeRole] = field(default_factory=list)
    members: dict[int, FakeMember] = field(default_factory=dict)
    locale: str = "en-US"

    @property
    def text_channel(self) -> FakeChannel:
        """The default channel interactions come from when a test names none."""
        return next(c for c in self.channels if c.type == 0)

    @property
    def everyone(self) -> FakeRole:
        return next(r for r in self.roles if r.id == self.id)

    def role(self, role_id: int) -> FakeRole | None:
        return next((r for r in self.roles if r.id == role_id), None)

    def permissions_of(self, member: FakeMember) -> int:
        """Guild-level permissions, computed the way Discord does (no overwrites)."""
        if member.id == self.owner_id:
            return ALL_PERMISSIONS
        value = self.everyone.permissions
        for role_id in member.role_ids:
            role = self.role(role_id)
            if role is not None:
                value |= role.permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value


@dataclass
class Upload:
    """One ``files[n]`` part of a multipart request, exactly as the client sent it."""

    field: str
    filename: str
    data: bytes
    content_type: str | None

    @property
    def index(self) -> int:
        return int(self.field[len("files[") : -1])


@dataclass
class StoredFile:
    """A file the fake CDN serves: a test's upload or one the bot sent.

    ``size`` is what Discord *claims* (tests may make it lie), ``data`` is what
    the CDN actually returns. ``stall``/``status``/``cut_off`` make downloads
    misbehave (``cut_off``: the connection drops halfway through the body).
    """

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str
    size: int
    description: str | None = None
    width: int | None = None
    height: int | None = None
    stall: float = 0.0
    status: int = 200
    cut_off: bool = False
    downloads: int = 0
    # The `hm` signatures whose links still work; Discord's signed links expire after
    # about a day (`expire_links`), and POST /attachments/refresh-urls signs a new one.
    signatures: set[str] = field(default_factory=set)

    def expire_links(self) -> None:
        """Every link handed out so far stops working, as a day after the upload."""
        self.signatures.clear()

    def attachment(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.content_type:
            payload["content_type"] = self.content_type
        if self.description is not None:
            payload["description"] = self.description
        if self.width is not None and self.height is not None:
            payload["width"], payload["height"] = self.width, self.height
        return payload


@dataclass
class Message:
    """A message as Discord stores it; ``to_payload`` is how it goes over the wire."""

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    files: list[StoredFile] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    mentions: list[dict[str, Any]] = field(default_factory=list)
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    # Its source: "channel" (POST /channels/../messages), "interaction", "user" (add_message)
    via: str = "channel"
    deleted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred "Bot is thinking..." placeholder."""
        return bool(self.flags & LOADING)

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return [f.attachment() for f in self.files]

    @property
    def embed(self) -> dict[str, Any] | None:
        return self.embeds[0] if self.embeds else None

    def file(self, filename: str) -> StoredFile:
        for f in self.files:
            if f.filename == filename:
                return f
        raise AssertionError(
            f"message {self.id} has no file {filename!r}; it has {[f.filename for f in self.files]}"
        )

    def iter_components(self) -> Iterator[dict[str, Any]]:
        """Every component, depth first: action rows, their children, v2 containers..."""
        yield from iter_components(self.components)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [c for c in self.iter_components() if c.get("type") == 2]

    @property
    def selects(self) -> list[dict[str, Any]]:
        return [c for c in self.iter_components() if c.get("type") in (3, 5, 6, 7, 8)]

    def component(self, custom_id: str) -> dict[str, Any]:
        for c in self.iter_components():
            if c.get("custom_id") == custom_id:
                return c
        ids = [c["custom_id"] for c in self.iter_components() if "custom_id" in c]
        raise AssertionError(f"message {self.id} has no component {custom_id!r}; it has {ids}")

    def snapshot(self) -> None:
        """Remember this version: ``history`` is every state the user saw, oldest first."""
        self.history.append(copy.deepcopy(self.to_payload()))

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "channel_id": str(self.channel_id),
            "author": self.author.to_payload(),
            "content": self.content,
            "embeds": self.embeds,
            "components": self.components,
            "attachments": self.attachments,
            "flags": self.flags,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": self.mentions,
            "mention_roles": [],
            "pinned": False,
        }
        if self.guild_id is not None:
            payload["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            payload["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            payload["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            payload["interaction_metadata"] = self.interaction_metadata
        if self.message_reference is not None:
            payload["message_reference"] = self.message_reference
        return payload


def iter_components(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components:
        yield component
        yield from iter_components(component.get("components", []))
        for key in ("component", "accessory"):
            if isinstance(component.get(key), dict):
                yield from iter_components([component[key]])


@dataclass
class Call:
    """One REST request the client made, with what the fake answered."""

    method: str
    path: str  # without the /api/v10 prefix
    route: str  # the matched template, e.g. "PATCH /webhooks/{app}/{token}/messages/{message}"
    query: dict[str, str]
    json: Any
    files: list[Upload]
    t: float  # seconds since the fake started
    status: int = 0
    response: Any = None
    token: str | None = None  # the interaction token, for interaction/webhook routes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def summary(self) -> str:
        detail = ""
        if isinstance(self.json, dict):
            keys = {k: self.json[k] for k in ("type", "content") if k in self.json}
            if keys:
                detail = f" {keys}"
        if self.files:
            detail += f" files={[f.filename for f in self.files]}"
        if not self.ok and isinstance(self.response, dict):
            detail += f" -> {self.response.get('message')!r}"
        path = self.path.replace(self.token, "{token}") if self.token else self.path
        return f"{self.t:7.3f}s {self.method} {path} {self.status}{detail}"


@dataclass
class Callback:
    """The interaction callback (the mandatory first response to an interaction)."""

    type: int
    data: dict[str, Any]
    files: list[Upload]
    call: Call
    delay: float  # seconds between dispatching the interaction and the callback

    @property
    def name(self) -> str:
        return CALLBACK_NAMES.get(self.type, f"type {self.type}")

    @property
    def ephemeral(self) -> bool:
        return bool(self.data.get("flags", 0) & EPHEMERAL)
