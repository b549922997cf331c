"""The plain REST routes: login, commands, channels, guilds, users.

Interaction callbacks and webhooks live in ``webhooks.py``. Route templates
mirror discord.py's ``http.py`` ``Route(...)`` paths so a call shows up here
under the same name a reader finds in discord.py.
"""

from __future__ import annotations

from typing import Any

from .messages import MessageWriter
from .models import EPHEMERAL, FakeChannel, FakeGuild
from .payloads import application_payload, guild_payload, member_payload
from .router import Reply, Request, Router, no_content, ok
from .state import State
from .validation import ApiError, check_commands


class RestApi:
    def __init__(self, state: State, writer: MessageWriter, gateway_url: str) -> None:
        self.state = state
        self.writer = writer
        self.gateway_url = gateway_url

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", "/users/@me", self.me)
        add("GET", "/oauth2/applications/@me", self.application)
        add("GET", "/applications/@me", self.application)
        add("GET", "/gateway", self.gateway)
        add("GET", "/gateway/bot", self.gateway)
        for prefix in ("/applications/{app}", "/applications/{app}/guilds/{guild}"):
            add("GET", f"{prefix}/commands", self.list_commands)
            add("PUT", f"{prefix}/commands", self.overwrite_commands)
            add("POST", f"{prefix}/commands", self.upsert_command)
            add("GET", f"{prefix}/commands/{{command}}", self.get_command)
            add("PATCH", f"{prefix}/commands/{{command}}", self.edit_command)
            add("DELETE", f"{prefix}/commands/{{command}}", self.delete_command)
        add("GET", "/applications/{app}/guilds/{guild}/commands/permissions", self.no_permissions)
        add("GET", "/channels/{channel}", self.get_channel)
        add("GET", "/channels/{channel}/messages", self.history)
        add("POST", "/channels/{channel}/messages", self.post_message)
        add("GET", "/channels/{channel}/messages/{message}", self.get_message)
        add("PATCH", "/channels/{channel}/messages/{message}", self.edit_message)
        add("DELETE", "/channels/{channel}/messages/{message}", self.delete_message)
        add("POST", "/channels/{channel}/typing", self.accept)
        add("PUT", "/channels/{channel}/messages/{message}/reactions/{emoji}/@me", self.accept)
        add("DELETE", "/channels/{channel}/messages/{message}/reactions/{emoji}/@me", self.accept)
        add("POST", "/users/@me/channels", self.open_dm)
        add("GET", "/users/{user}", self.get_user)
        add("GET", "/guilds/{guild}", self.get_guild)
        add("GET", "/guilds/{guild}/channels", self.guild_channels)
        add("GET", "/guilds/{guild}/roles", self.guild_roles)
        add("GET", "/guilds/{guild}/members/{user}", self.get_member)
        add("POST", "/attachments/refresh-urls", self.refresh_urls)

    async def refresh_urls(self, req: Request) -> Reply:
        """Signed CDN links expire; this signs them again (what Discord's endpoint does)."""
        urls = (req.json or {}).get("attachment_urls") or []
        refreshed = [{"original": url, "refreshed": self.state.refresh_link(url)} for url in urls]
        return ok({"refreshed_urls": refreshed})

    # -- login ---------------------------------------------------------------

    async def me(self, req: Request) -> Reply:
        return ok(
            self.state.bot_user.to_payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        )

    async def application(self, req: Request) -> Reply:
        return ok(
            application_payload(self.state.application_id, self.state.bot_user, self.state.owner)
        )

    async def gateway(self, req: Request) -> Reply:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return ok({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    # -- application commands --------------------------------------------------

    def _scope(self, req: Request) -> int | None:
        if int(req.params["app"]) != self.state.application_id:
            raise ApiError(403, 50001, "Missing Access")
        if "guild" not in req.params:
            return None
        return self._guild(req).id

    async def list_commands(self, req: Request) -> Reply:
        return ok(self.state.registry.list(self._scope(req)))

    async def overwrite_commands(self, req: Request) -> Reply:
        scope = self._scope(req)
        check_commands(req.json or [])
        return ok(self.state.registry.overwrite(scope, req.json or []))

    async def upsert_command(self, req: Request) -> Reply:
        scope = self._scope(req)
        check_commands([req.json])
        return ok(self.state.registry.upsert(scope, req.json), status=201)

    def _command(self, req: Request) -> dict[str, Any]:
        found = self.state.registry.get(self._scope(req), int(req.params["command"]))
        if found is None:
            raise ApiError(404, 10063, "Unknown application command")
        return found

    async def get_command(self, req: Request) -> Reply:
        return ok(self._command(req))

    async def edit_command(self, req: Request) -> Reply:
        cmd = self._command(req)
        check_commands([{**cmd, **(req.json or {})}])
        return ok(self.state.registry.edit(self._scope(req), int(cmd["id"]), req.json or {}))

    async def delete_command(self, req: Request) -> Reply:
        self.state.registry.delete(self._scope(req), int(self._command(req)["id"]))
        return no_content()

    async def no_permissions(self, req: Request) -> Reply:
        self._scope(req)
        return ok([])

    # -- channels and messages -------------------------------------------------

    def _channel(self, req: Request) -> FakeChannel:
        channel = self.state.channels.get(int(req.params["channel"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        guild = self.state.guilds.get(channel.guild_id) if channel.guild_id else None
        if guild is not None and self.state.bot_user.id not in guild.members:
            raise ApiError(403, 50001, "Missing Access")  # a server the bot is not in
        return channel

    def _channel_message(self, req: Request) -> Any:
        channel = self._channel(req)
        message = self.state.messages.get(int(req.params["message"]))
        if (
            message is None
            or message.deleted
            or message.channel_id != channel.id
            or message.flags & EPHEMERAL
        ):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def get_channel(self, req: Request) -> Reply:
        return ok(self._channel(req).to_payload())

    async def history(self, req: Request) -> Reply:
        channel = self._channel(req)
        limit = int(req.query.get("limit", 50))
        visible = [
            m
            for m in self.state.messages.values()
            if m.channel_id == channel.id and not m.deleted and not m.flags & EPHEMERAL
        ]
        return ok([m.to_payload() for m in reversed(visible)][:limit])

    async def post_message(self, req: Request) -> Reply:
        channel = self._channel(req)
        if not channel.bot_can_send:
            raise ApiError(403, 50013, "Missing Permissions")
        payload = dict(req.json or {})
        payload["flags"] = (
            payload.get("flags") or 0
        ) & ~EPHEMERAL  # only interactions can be ephemeral
        message = self.writer.create(channel, payload, req.files, via="channel")
        self.state.emit("MESSAGE_CREATE", message.to_payload())
        return ok(message.to_payload())

    async def get_message(self, req: Request) -> Reply:
        return ok(self._channel_message(req).to_payload())

    async def edit_message(self, req: Request) -> Reply:
        message = self._channel_message(req)
        if message.author.id != self.state.bot_user.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        return ok(self.writer.edit(message, req.json, req.files).to_payload())

    async def delete_message(self, req: Request) -> Reply:
        self._channel_message(req).deleted = True
        return no_content()

    async def accept(self, req: Request) -> Reply:
        self._channel(req)
        return no_content()

    async def open_dm(self, req: Request) -> Reply:
        user = self.state.users.get(int((req.json or {}).get("recipient_id", 0)))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return ok(self.state.dm_channel(user).to_payload())

    # -- users and guilds ------------------------------------------------------

    async def get_user(self, req: Request) -> Reply:
        user = self.state.users.get(int(req.params["user"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return ok(user.to_payload())

    def _guild(self, req: Request) -> FakeGuild:
        guild = self.state.guilds.get(int(req.params["guild"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, req: Request) -> Reply:
        guild = self._guild(req)
        counts = {"approximate_member_count": len(guild.members), "approximate_presence_count": 0}
        return ok(guild_payload(guild) | counts)

    async def guild_channels(self, req: Request) -> Reply:
        return ok([c.to_payload() for c in self._guild(req).channels])

    async def guild_roles(self, req: Request) -> Reply:
        return ok([r.to_payload() for r in self._guild(req).roles])

    async def get_member(self, req: Request) -> Reply:
        guild = self._guild(req)
        member = guild.members.get(int(req.params["user"]))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return ok(member_payload(guild, member))
