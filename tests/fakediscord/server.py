"""``FakeDiscord``: the server, the discord.py patching, and what tests call.

The server is aiohttp on 127.0.0.1 with a free port, in the test's own event
loop (so a bot that blocks the loop starves the fake too, and heartbeats
stop: exactly what a real gateway would see).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import Any

import yarl
from aiohttp import web
from discord import Client
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .cdn import Cdn
from .commands import OPTION_TYPES, chat_input_data, check_visible
from .gateway import Gateway
from .interaction import FakeInteraction
from .messages import MessageWriter
from .models import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser, Message, StoredFile
from .payloads import interaction_payload, member_payload
from .rest import RestApi
from .router import API_PREFIX, Dispatcher, Reply, Router
from .spec import Violation
from .state import State
from .webhooks import InteractionResponses

SELECTS = (3, 5, 6, 7, 8)


class FakeDiscord(State):
    """A local Discord for one test. See the package docstring for the tour."""

    def __init__(self, *, heartbeat_interval: float = 0.25, **options: Any) -> None:
        super().__init__(**options)
        self.gateway = Gateway(self, heartbeat_interval=heartbeat_interval)
        self._router = Router()
        self._dispatcher = Dispatcher(self, self._router)
        self._runner: web.AppRunner | None = None
        self._saved: tuple[str, yarl.URL] | None = None
        self._bots: list[tuple[Client, asyncio.Task[None] | None]] = []  # closed on stop()

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        error = exc_info[1]
        if self.spec_violations and isinstance(error, BaseException):  # keep the first failure
            error.add_note(self._spec_report())
        elif self.spec_violations:
            raise AssertionError(self._spec_report())

    def take_spec_violations(self) -> list[Violation]:
        """The bodies Discord's OpenAPI document refused so far; they no longer fail the test.

        For a test that sends an invalid body on purpose: assert on what comes back.
        Any left when the fake stops fail the test (``__aexit__``), naming endpoint and field.
        """
        taken, self.spec_violations = self.spec_violations, []
        return taken

    def _spec_report(self) -> str:
        lines = "".join(f"\n  {violation}" for violation in self.spec_violations)
        return (
            f"{len(self.spec_violations)} request bodies break Discord's OpenAPI document "
            f"(tests/fakediscord/spec.py; the fake answered 400 Invalid Form Body):{lines}"
        )

    async def start(self) -> None:
        app = web.Application(
            client_max_size=256 * 1024 * 1024
        )  # let oversized uploads reach the 413 check
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._dispatcher.handle)
        Cdn(self).register(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.gateway.url = f"ws://127.0.0.1:{port}/gateway"
        writer = MessageWriter(self)
        RestApi(self, writer, self.gateway.url).register(self._router)
        InteractionResponses(self, writer).register(self._router)
        self._patch()

    async def stop(self) -> None:
        for bot, task in self._bots:
            if not bot.is_closed():
                await bot.close()
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self._bots.clear()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._unpatch()

    def _patch(self) -> None:
        """Point discord.py at the fake: REST (webhooks share Route.BASE) and the gateway."""
        if Route.BASE.startswith("http://127.0.0.1"):
            raise RuntimeError("another FakeDiscord is running; they cannot nest")
        self._saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        Route.BASE = self.base_url + API_PREFIX
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway.url)

    def _unpatch(self) -> None:
        if self._saved is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    def emit(self, name: str, data: dict[str, Any]) -> None:
        """Send a gateway event to the connected bot (dropped if none, or it lacks the intent)."""
        self.gateway.dispatch(name, data)

    # -- the bot ---------------------------------------------------------------

    async def start_bot(
        self, bot: Client, *, token: str = "fake-token", timeout: float = 10.0
    ) -> asyncio.Task[None]:
        """Log ``bot`` in (unless it is), connect it, and wait for ``on_ready``.

        Sets ``guild_ready_timeout`` low: discord.py otherwise waits 2 s after
        the last GUILD_CREATE before it calls itself ready. The bot is closed
        when the fake stops.
        """
        bot._connection.guild_ready_timeout = 0.05
        if bot.http.token is None:
            await bot.login(token)
        task = asyncio.create_task(bot.connect(reconnect=False), name="fakediscord-bot")
        await self.wait_ready(bot, task, timeout=timeout)
        return task

    async def wait_ready(
        self, bot: Client, task: asyncio.Task[None] | None = None, *, timeout: float = 10.0
    ) -> None:
        """Wait for ``bot.is_ready()``; if its ``connect()`` task dies first, raise its error.

        For a bot the test connected itself: call it right after creating the
        ``connect()`` task, so the short ``guild_ready_timeout`` still applies.
        Either way the fake closes the bot when it stops.
        """
        bot._connection.guild_ready_timeout = min(bot._connection.guild_ready_timeout, 0.05)
        if all(known is not bot for known, _ in self._bots):
            self._bots.append((bot, task))
        ready = asyncio.create_task(bot.wait_until_ready())
        waiting: set[asyncio.Task[Any]] = {ready} | ({task} if task else set())
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            return
        ready.cancel()
        if task is not None and task in done:
            task.result()  # re-raises the connection error
            raise AssertionError("the bot's connect() returned before it was ready")
        raise AssertionError(self.describe_timeout("the bot to become ready", timeout))

    # -- injecting interactions --------------------------------------------------

    async def slash(
        self,
        guild: FakeGuild | None,
        member: FakeMember | FakeUser,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        channel: FakeChannel | None = None,
        strict: bool = True,
    ) -> FakeInteraction:
        """Run ``/command`` ("dreamadmin queue-size" for subcommands) as ``member`` would.

        Option values: str/int/float/bool, ``add_attachment()`` dicts for
        attachments, FakeMember/FakeUser/FakeRole/FakeChannel for the rest.
        """
        name, *path = command.split()
        cmd = self._command(guild, member, name, 1, strict)
        data = chat_input_data(cmd, path, options or {}, self._resolver(guild), strict=strict)
        label = f"/{command}" + "".join(f" {k}={_short(v)}" for k, v in (options or {}).items())
        return await self._interact(2, data, guild, member, channel, label=label)

    async def autocomplete(
        self,
        guild: FakeGuild | None,
        member: FakeMember | FakeUser,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        focused: str,
        channel: FakeChannel | None = None,
        strict: bool = True,
    ) -> FakeInteraction:
        """The user typing into option ``focused``; the text typed is ``options[focused]``."""
        name, *path = command.split()
        cmd = self._command(guild, member, name, 1, strict)
        data = chat_input_data(
            cmd, path, options or {}, self._resolver(guild), strict=strict, focused=focused
        )
        typed = (options or {}).get(focused, "")
        return await self._interact(
            4, data, guild, member, channel, label=f"autocomplete /{command} {focused}={typed!r}"
        )

    async def context_menu(
        self,
        guild: FakeGuild | None,
        member: FakeMember | FakeUser,
        name: str,
        target: Message | FakeMember | FakeUser,
        *,
        strict: bool = True,
    ) -> FakeInteraction:
        """Apps > ``name`` on a message (message command) or on a user (user command)."""
        kind = 3 if isinstance(target, Message) else 2
        cmd = self._command(guild, member, name, kind, strict)
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": cmd["name"],
            "type": kind,
            "target_id": str(target.id),
        }
        if isinstance(target, Message):
            data["resolved"] = {"messages": {str(target.id): target.to_payload()}}
            channel = self.channels[target.channel_id]
        else:
            data["resolved"] = {}
            self._resolver(guild)(target, 6, data["resolved"])
            channel = None
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        return await self._interact(
            2, data, guild, member, channel, label=f"context menu {name!r} on {target.id}"
        )

    async def click(
        self,
        guild: FakeGuild | None,
        member: FakeMember | FakeUser,
        message: Message | int,
        custom_id: str,
        values: list[Any] | None = None,
        *,
        strict: bool = True,
    ) -> FakeInteraction:
        """Press a button, or pick ``values`` in a select, on ``message``."""
        msg = message if isinstance(message, Message) else self.message(message)
        if msg.deleted:
            raise AssertionError(f"message {msg.id} was deleted; nobody can click on it")
        component = msg.component(custom_id)
        kind = component["type"]
        if strict and component.get("disabled"):
            raise AssertionError(
                f"component {custom_id!r} is disabled; the Discord client would not send a click"
            )
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind}
        if kind in SELECTS:
            data["values"], resolved = self._select_values(guild, component, values or [], strict)
            if resolved:
                data["resolved"] = resolved
        elif values is not None:
            raise AssertionError(f"{custom_id!r} is a button; buttons take no values")
        label = f"click {component.get('label') or custom_id!r}" + (
            f" values={data['values']}" if "values" in data else ""
        )
        return await self._interact(
            3, data, guild, member, self.channels[msg.channel_id], label=label, message=msg
        )

    async def submit_modal(
        self, inter: FakeInteraction, values: Mapping[str, Any], *, strict: bool = True
    ) -> FakeInteraction:
        """Fill in and submit the modal ``inter`` was answered with; ``values`` by custom_id."""
        modal = inter.modal
        if modal is None:
            raise AssertionError(
                f"{inter.label} was not answered with a modal (callback: {inter.callback})"
            )
        unused = set(values)

        def field(component: dict[str, Any]) -> dict[str, Any]:
            custom_id = component.get("custom_id")
            unused.discard(custom_id)
            out: dict[str, Any] = {"type": component["type"], "custom_id": custom_id}
            if "id" in component:
                out["id"] = component["id"]
            if component["type"] == 4:
                out["value"] = str(values.get(custom_id, component.get("value") or ""))
                if strict and component.get("required", True) and not out["value"]:
                    raise AssertionError(f"modal field {custom_id!r} is required")
            else:
                out["values"] = [str(v) for v in values.get(custom_id, [])]
            return out

        components: list[dict[str, Any]] = []
        for row in modal.get("components", []):
            if row["type"] == 1:
                components.append(
                    {"type": 1, "components": [field(c) for c in row.get("components", [])]}
                )
            elif row["type"] == 18:
                components.append(
                    {"type": 18, "id": row.get("id", 0), "component": field(row["component"])}
                )
        if unused:
            raise AssertionError(f"the modal has no field(s) {sorted(unused)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        return await self._interact(
            5,
            data,
            inter.guild,
            inter.user,
            inter.channel,
            label=f"submit modal {modal.get('title')!r}",
            message=inter.source_message,
        )

    def expire(self, inter: FakeInteraction | str) -> None:
        """Kill an interaction token: its webhook calls now answer 401 Invalid Webhook Token."""
        token = inter if isinstance(inter, str) else inter.token
        self.interactions[token].expired = True

    def transcript(self, inter: FakeInteraction) -> str:
        return inter.transcript()

    def inject_error(
        self,
        method: str,
        path: str,
        status: int,
        body: dict[str, Any] | None = None,
        *,
        times: int = 1,
        retry_after: float = 0.05,
    ) -> None:
        """Answer the next ``times`` calls matching ``method`` and fnmatch ``path`` with an error.

        ``path`` is without ``/api/v10``, e.g. ``"/webhooks/*"``. A 429 gets a
        ``Via`` header and ``retry_after`` (without them discord.py treats it as
        a Cloudflare ban and gives up), so discord.py waits and retries.
        """
        headers: dict[str, str] = {}
        if status == 429:
            body = body or {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": False,
            }
            headers = {
                "Via": "1.1 google",
                "Retry-After": str(retry_after),
                "X-RateLimit-Scope": "user",
            }
        self._dispatcher.inject(
            method,
            path,
            Reply(status, body or {"message": "Injected error", "code": 0}, headers),
            times,
        )

    # -- helpers -----------------------------------------------------------------

    def _command(
        self,
        guild: FakeGuild | None,
        member: FakeMember | FakeUser,
        name: str,
        kind: int,
        strict: bool,
    ) -> dict[str, Any]:
        cmd = self.registry.find(name, guild.id if guild else None, kind)
        if strict:
            perms = guild.permissions_of(member) if guild and isinstance(member, FakeMember) else 0
            installed_there = guild is None or self.bot_user.id in guild.members
            check_visible(cmd, perms, in_guild=guild is not None, bot_there=installed_there)
        return cmd

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        guild: FakeGuild | None,
        user: FakeMember | FakeUser,
        channel: FakeChannel | None,
        *,
        label: str,
        message: Message | None = None,
    ) -> FakeInteraction:
        if not self.gateway.sessions:  # while it reconnects, the event waits for its RESUME
            raise AssertionError(
                "no bot is connected to the fake gateway; use `await fake.start_bot(bot)` first"
            )
        if guild is not None and not (isinstance(user, FakeMember) and user.guild_id == guild.id):
            raise AssertionError(f"{user!r} is not a member of guild {guild.name!r}")
        plain = user.user if isinstance(user, FakeMember) else user
        channel = channel or (guild.text_channel if guild else self.dm_channel(plain))
        bot_member = guild.members.get(self.bot_user.id) if guild else None
        payload = interaction_payload(
            interaction_id=self.ids.next(),
            app_id=self.application_id,
            type=kind,
            token=secrets.token_urlsafe(48),
            data=data,
            guild=guild,
            channel=channel,
            user=user if guild else plain,
            # Where the bot is not in the server, the app acts through the interaction only.
            app_permissions=guild.permissions_of(bot_member) if bot_member else 0,
            user_installed=guild is not None and bot_member is None,
            locale=self.locale,
            attachment_size_limit=self.attachment_size_limit,
            message=message.to_payload() if message else None,
        )
        inter = FakeInteraction(
            self,
            payload,
            label=label,
            user=user,
            guild=guild,
            channel=channel,
            source_message=message,
        )
        self.interactions[inter.token] = inter
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        await self.gateway.flush()
        return inter

    def _resolver(self, guild: FakeGuild | None) -> Any:
        """Turns option values into ids and fills ``resolved`` as Discord does."""

        def resolve(value: Any, kind: int, resolved: dict[str, Any]) -> str:
            if kind == 11 and isinstance(value, (dict, StoredFile)):
                attachment = value.attachment() if isinstance(value, StoredFile) else value
                resolved.setdefault("attachments", {})[attachment["id"]] = attachment
                return attachment["id"]
            if kind in (6, 9) and isinstance(value, (FakeMember, FakeUser)):
                user = value.user if isinstance(value, FakeMember) else value
                resolved.setdefault("users", {})[str(user.id)] = user.to_payload()
                if guild is not None and user.id in guild.members:
                    member = member_payload(guild, guild.members[user.id], with_permissions=True)
                    del member["user"]
                    resolved.setdefault("members", {})[str(user.id)] = member
                return str(user.id)
            if kind in (8, 9) and isinstance(value, FakeRole):
                resolved.setdefault("roles", {})[str(value.id)] = value.to_payload()
                return str(value.id)
            if kind == 7 and isinstance(value, FakeChannel):
                channel = value.to_payload(permissions=0)
                resolved.setdefault("channels", {})[str(value.id)] = channel
                return str(value.id)
            raise AssertionError(f"{value!r} cannot be the value of a {OPTION_TYPES[kind]} option")

        return resolve

    def _select_values(
        self, guild: FakeGuild | None, component: dict[str, Any], values: list[Any], strict: bool
    ) -> tuple[list[str], dict[str, Any]]:
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if strict and not low <= len(values) <= high:
            raise AssertionError(
                f"select {component['custom_id']!r} takes {low}-{high} values, got {values}"
            )
        if component["type"] == 3:
            allowed = [o["value"] for o in component.get("options", [])]
            if strict and not set(values) <= set(allowed):
                raise AssertionError(
                    f"select {component['custom_id']!r} offers {allowed}, got {values}"
                )
            return [str(v) for v in values], {}
        resolved: dict[str, Any] = {}
        kinds = {5: 6, 6: 8, 7: 7, 8: 9}  # select type -> option type with the same resolution
        return [
            self._resolver(guild)(v, kinds[component["type"]], resolved) for v in values
        ], resolved


def _short(value: Any) -> str:
    if isinstance(value, dict) and "filename" in value:
        return value["filename"]
    if isinstance(value, (FakeMember, FakeUser, FakeRole, FakeChannel)):
        return value.name
    return repr(value) if isinstance(value, str) else str(value)
