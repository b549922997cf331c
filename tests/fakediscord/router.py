"""REST plumbing: parse a request, route it, record it, answer like Discord.

Every request under ``/api/v10`` goes through ``Dispatcher.handle``: the body
is decoded (JSON, or multipart with ``payload_json`` and ``files[n]``), checked
against Discord's OpenAPI document (``spec.py``: a violation answers 400
Invalid Form Body, as Discord would, and unless it only broke a limit, such as
a length, lands in ``spec_violations``, which fails the test when the fake
stops), the route template matched, the handler run, and a ``Call`` recorded
with the status and body that went back. Unknown routes answer 404 JSON and
land in ``unexpected_calls`` so a test notices calls the fake (and probably the
bot's author) did not anticipate.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from . import spec
from .models import Call, Upload
from .state import State
from .validation import ApiError

API_PREFIX = "/api/v10"


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    files: list[Upload]
    call: Call  # the record being written; status/response are filled in after the handler


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Reply]]


def ok(body: Any, status: int = 200) -> Reply:
    return Reply(status, body)


def no_content() -> Reply:
    return Reply(204)


@dataclass
class InjectedError:
    method: str
    pattern: str  # fnmatch pattern over the path without /api/v10, e.g. "/webhooks/*"
    reply: Reply
    times: int


class Router:
    """Route templates like ``/channels/{channel}/messages/{message}``; first match wins."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self._routes.append((method, template, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        for route_method, template, regex, handler in self._routes:
            found = regex.match(path)
            if found and route_method == method:
                return f"{method} {template}", handler, found.groupdict()
        return None


class Dispatcher:
    def __init__(self, state: State, router: Router) -> None:
        self.state = state
        self.router = router
        self.injected: list[InjectedError] = []

    def inject(self, method: str, pattern: str, reply: Reply, times: int) -> None:
        self.injected.append(InjectedError(method.upper(), pattern, reply, times))

    def _take_injected(self, method: str, path: str) -> Reply | None:
        for entry in self.injected:
            if entry.method == method and fnmatch.fnmatchcase(path, entry.pattern):
                entry.times -= 1
                if entry.times <= 0:
                    self.injected.remove(entry)
                return entry.reply
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len(API_PREFIX) :]
        body, files = await read_body(request)
        violation = spec.check(request.method, path, body)
        if violation is not None and not violation.is_limit:  # a limit: the bot may handle it
            self.state.spec_violations.append(violation)
        match = self.router.match(request.method, path)
        route, handler, params = match if match else (f"{request.method} ?", None, {})
        call = Call(
            method=request.method,
            path=path,
            route=route,
            query=dict(request.query),
            json=body,
            files=files,
            t=self.state.t(),
            token=params.get("token"),
            headers={
                k: v
                for k, v in request.headers.items()
                if k.lower() in ("authorization", "x-audit-log-reason")
            },
        )
        reply = self._take_injected(request.method, path)
        if reply is None and handler is None:
            reply = Reply(404, {"message": "404: Not Found", "code": 0})
            self.state.unexpected_calls.append(call)
        # Webhook and interaction routes authenticate with their token; the rest need the bot's.
        needs_auth = call.token is None and not path.startswith("/interactions/")
        authorization = request.headers.get("Authorization")
        wrong_token = self.state.bot_token is not None and authorization != (
            f"Bot {self.state.bot_token}"
        )
        if reply is None and needs_auth and (authorization is None or wrong_token):
            reply = Reply(401, {"message": "401: Unauthorized", "code": 0})
        if reply is None and violation is not None:
            error = violation.api_error()
            reply = Reply(error.status, error.body)
        if reply is None and handler is not None:
            request_ = Request(request.method, path, params, call.query, body, files, call)
            try:
                reply = await handler(request_)
            except ApiError as error:
                reply = Reply(error.status, error.body)
        assert reply is not None
        call.status, call.response = reply.status, reply.body
        self.state.record(call)
        return to_response(reply)


async def read_body(request: web.Request) -> tuple[Any, list[Upload]]:
    """JSON body, or multipart: ``payload_json`` plus ``files[n]`` parts (discord.py's format)."""
    if request.content_type == "multipart/form-data":
        payload: Any = None
        files: list[Upload] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            data = await part.read(decode=False)
            if part.name == "payload_json":
                payload = json.loads(data)
            elif part.name and part.name.startswith("files["):
                files.append(
                    Upload(
                        part.name,
                        part.filename or "unknown",
                        bytes(data),
                        part.headers.get("Content-Type"),
                    )
                )
        return payload, files
    if not request.can_read_body:
        return None, []
    text = await request.text()
    return (json.loads(text) if text else None), []


def to_response(reply: Reply) -> web.Response:
    if reply.body is None:
        return web.Response(status=reply.status, headers=reply.headers)
    # Exactly "application/json": discord.py compares the header verbatim and
    # treats anything else (e.g. with "; charset=utf-8") as plain text.
    headers = {"Content-Type": "application/json", **reply.headers}
    return web.Response(status=reply.status, body=json.dumps(reply.body).encode(), headers=headers)
