"""The attachment CDN: serves ``StoredFile`` bytes, slowly, halfway or not at all if asked.

``/attachments/{channel}/{id}/{filename}`` is the ``url`` of an attachment and
``/media/attachments/...`` its ``proxy_url``; discord.py's
``Attachment.read()`` fetches whichever it was given, query string and all.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .state import State


class Cdn:
    def __init__(self, state: State) -> None:
        self.state = state

    def register(self, app: web.Application) -> None:
        app.router.add_get("/attachments/{channel}/{file}/{filename}", self.serve)
        app.router.add_get("/media/attachments/{channel}/{file}/{filename}", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        stored = self.state.files.get(int(request.match_info["file"]))
        status = (
            404
            if stored is None
            or stored.filename != request.match_info["filename"]
            or request.query.get("hm") not in stored.signatures  # an expired link
            else stored.status
        )
        if stored is not None:
            stored.downloads += 1
            if stored.stall:
                await asyncio.sleep(stored.stall)
        self.state.cdn_requests.append((self.state.t(), request.path, status))
        self.state.changed()
        if stored is None or status != 200:
            return web.Response(
                status=status, text="<Error><Code>NoSuchKey</Code></Error>", content_type="text/xml"
            )
        content_type = stored.content_type or "application/octet-stream"
        if stored.cut_off:  # promise the whole file, send half, drop the connection
            response = web.StreamResponse(headers={"Content-Type": content_type})
            response.content_length = len(stored.data)
            await response.prepare(request)
            await response.write(stored.data[: len(stored.data) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=stored.data, content_type=content_type)
