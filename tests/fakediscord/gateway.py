"""The gateway websocket: HELLO, heartbeats, IDENTIFY/RESUME, READY, dispatches.

discord.py 2.7 connects to ``DEFAULT_GATEWAY?v=10&encoding=json&compress=zlib-stream``
(``zstd-stream`` where a zstd module is installed). With zlib-stream the fake
compresses every frame with one shared zlib context and a Z_SYNC_FLUSH, as
Discord does; for anything else it sends text frames, which discord.py reads
uncompressed.

As on Discord, a *session* (id, sequence number, the events sent) outlives
its websocket *connection*: events emitted while the bot is reconnecting are
kept and replayed when it RESUMEs, so nothing a test injects is lost.
Frames go out through one queue per connection, in the order emitted, which
also lets synchronous code emit them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from typing import Any

from aiohttp import WSMsgType, web

from .payloads import guild_create_payload, member_payload, ready_payload
from .state import State

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, REQUEST_MEMBERS = 0, 1, 2, 6, 7, 8
INVALID_SESSION, HELLO, HEARTBEAT_ACK = 9, 10, 11

# Events a bot only receives with the matching intent.
INTENT_OF = {"GUILD_MEMBER_ADD": 1 << 1, "MESSAGE_CREATE": 1 << 9}
MESSAGE_CONTENT = 1 << 15


class Connection:
    """One websocket; frames are written in order by a single writer task."""

    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self._zlib = zlib.compressobj() if compress else None
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())

    @property
    def open(self) -> bool:
        return not self.ws.closed and not self._writer.done()

    def send(self, frame: dict[str, Any]) -> None:
        self._queue.put_nowait(frame)

    async def flush(self) -> None:
        if self.open:
            await self._queue.join()

    def stop(self) -> None:
        if not self._writer.done():
            self._queue.put_nowait(None)

    async def close(self) -> None:
        self.stop()
        await self._writer
        await self.ws.close()

    async def _write(self) -> None:
        while (frame := await self._queue.get()) is not None:
            try:
                raw = json.dumps(frame).encode()
                if self._zlib is not None:
                    packed = self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(packed)
                else:
                    await self.ws.send_str(raw.decode())
            except (ConnectionError, RuntimeError):
                pass  # the client went away; the reader notices and detaches us
            finally:
                self._queue.task_done()
        self._queue.task_done()


class Session:
    """What IDENTIFY creates and RESUME restores: an id, a sequence, the events sent."""

    def __init__(self, identify: dict[str, Any]) -> None:
        self.session_id = secrets.token_hex(16)
        self.intents: int = identify.get("intents", 0)
        self.shard: list[int] | None = identify.get("shard")
        self.seq = 0
        self.sent: list[dict[str, Any]] = []
        self.connection: Connection | None = None

    def dispatch(self, event: str, data: Any) -> None:
        self.seq += 1
        frame = {"op": DISPATCH, "d": data, "s": self.seq, "t": event}
        self.sent.append(frame)
        if self.connection is not None:
            self.connection.send(frame)

    def wants(self, event: str) -> bool:
        needed = INTENT_OF.get(event, 0)
        return not needed or bool(self.intents & needed)

    def has_guild(self, guild_id: int) -> bool:
        return self.shard is None or (guild_id >> 22) % self.shard[1] == self.shard[0]


class Gateway:
    def __init__(self, state: State, *, heartbeat_interval: float) -> None:
        self.state = state
        self.heartbeat_interval = heartbeat_interval
        self.url = ""  # ws://127.0.0.1:PORT/gateway once the server listens
        self.sessions: list[Session] = []
        self.connections: list[Connection] = []
        self.identify: dict[str, Any] | None = None  # the last IDENTIFY payload (intents, ...)
        self.resumes = 0

    @property
    def current(self) -> Session | None:
        """The newest session with a live connection (None while the bot reconnects)."""
        live = (s for s in reversed(self.sessions) if s.connection and s.connection.open)
        return next(live, None)

    def dispatch(self, event: str, data: dict[str, Any]) -> bool:
        """Send ``event`` to the bot's session (buffered while it reconnects); False if none.

        Without the intent an event needs, it is dropped, as Discord does; so
        is MESSAGE_CREATE's content without the message content intent.
        """
        guild_id = data.get("guild_id") or (data.get("id") if event == "GUILD_CREATE" else None)
        session = next(
            (s for s in reversed(self.sessions) if guild_id is None or s.has_guild(int(guild_id))),
            None,
        )
        if session is None or not session.wants(event):
            return False
        if event == "MESSAGE_CREATE" and not session.intents & MESSAGE_CONTENT:
            data = data | {"content": "", "embeds": [], "attachments": [], "components": []}
        session.dispatch(event, data)
        return True

    async def flush(self) -> None:
        for connection in self.connections:
            await connection.flush()

    async def reconnect(self) -> None:
        """Send op 7 RECONNECT; the bot reconnects and RESUMEs (watch ``resumes``)."""
        session = self.current
        if session is not None and session.connection is not None:
            session.connection.send({"op": RECONNECT, "d": None, "s": None, "t": None})
            await session.connection.flush()
            session.connection = None  # events now wait for the RESUME

    async def close(self) -> None:
        for connection in list(self.connections):
            await connection.close()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        connection = Connection(ws, compress=request.query.get("compress") == "zlib-stream")
        self.connections.append(connection)
        interval = int(self.heartbeat_interval * 1000)
        connection.send({"op": HELLO, "d": {"heartbeat_interval": interval}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._receive(connection, json.loads(msg.data))
        finally:
            self.connections.remove(connection)
            connection.stop()
            for session in self.sessions:
                if session.connection is connection:
                    session.connection = None
        return ws

    def _receive(self, connection: Connection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == HEARTBEAT:
            self.state.heartbeat_times.append(self.state.t())
            connection.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == IDENTIFY:
            self._identify(connection, data)
        elif op == RESUME:
            self._resume(connection, data)
        elif op == REQUEST_MEMBERS:
            self._members_chunk(data)
        # Presence and voice updates are accepted and ignored.
        self.state.changed()

    def _identify(self, connection: Connection, data: dict[str, Any]) -> None:
        self.identify = data
        session = Session(data)
        session.connection = connection
        self.sessions.append(session)
        guilds = [  # the servers the bot is in (not those it was never added to)
            g
            for g in self.state.guilds.values()
            if session.has_guild(g.id) and self.state.bot_user.id in g.members
        ]
        ready = ready_payload(
            bot=self.state.bot_user,
            app_id=self.state.application_id,
            guilds=guilds,
            session_id=session.session_id,
            resume_url=self.url,
            shard=session.shard,
        )
        session.dispatch("READY", ready)
        for guild in guilds:
            session.dispatch("GUILD_CREATE", guild_create_payload(guild))

    def _resume(self, connection: Connection, data: dict[str, Any]) -> None:
        session = next((s for s in self.sessions if s.session_id == data.get("session_id")), None)
        if session is None:
            connection.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        session.connection = connection
        for frame in session.sent:
            if frame["s"] > (data.get("seq") or 0):
                connection.send(frame)
        session.dispatch("RESUMED", {})
        self.resumes += 1

    def _members_chunk(self, data: dict[str, Any]) -> None:
        guild = self.state.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        query = (data.get("query") or "").lower()
        wanted = {int(u) for u in data.get("user_ids") or []}
        members = [
            m
            for m in guild.members.values()
            if (m.id in wanted if wanted else m.name.lower().startswith(query))
        ]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [member_payload(guild, m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        self.dispatch("GUILD_MEMBERS_CHUNK", chunk)
