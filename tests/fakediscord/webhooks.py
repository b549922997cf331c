"""Answering interactions: the callback, then webhook edits and follow-ups.

Modelled on Discord's behaviour, including the parts that bite:

* the callback must come within ``ack_deadline`` (3 s) and only once
  (``404 Unknown interaction`` / ``400 already acknowledged``), answered 200
  with ``{"interaction": ..., "resource": ...}`` because discord.py asks
  ``?with_response=1``;
* a type 5 defer leaves a "thinking" placeholder as @original; the first
  follow-up after it *replaces* the placeholder (keeping the defer's
  ephemerality) instead of posting a new message;
* for component interactions, @original is the message the component is on
  (types 6 and 7 edit it in place);
* a dead token (``expire()`` or older than 15 minutes) answers
  ``401 Invalid Webhook Token`` (50027) on every webhook route.
"""

from __future__ import annotations

from typing import Any

from .interaction import FakeInteraction
from .messages import MessageWriter
from .models import EPHEMERAL, LOADING, Callback, Message
from .router import Reply, Request, Router, no_content, ok
from .state import State
from .validation import ApiError, FormErrors, check_choices, check_modal

# interaction type -> callback types Discord accepts for it
ALLOWED_CALLBACKS = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}


class InteractionResponses:
    def __init__(self, state: State, writer: MessageWriter) -> None:
        self.state = state
        self.writer = writer

    def register(self, router: Router) -> None:
        router.add("POST", "/interactions/{interaction}/{token}/callback", self.callback)
        router.add("POST", "/webhooks/{app}/{token}", self.followup)
        for method, handler in (
            ("GET", self.get_message),
            ("PATCH", self.edit_message),
            ("DELETE", self.delete_message),
        ):
            router.add(method, "/webhooks/{app}/{token}/messages/{message}", handler)

    async def callback(self, req: Request) -> Reply:
        inter = self.state.interactions.get(req.params["token"])
        if inter is None or inter.id != int(req.params["interaction"]) or inter.token_dead():
            raise ApiError(404, 10062, "Unknown interaction")
        if inter.callback is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        delay = self.state.t() - inter.created
        if self.state.ack_deadline is not None and delay > self.state.ack_deadline:
            raise ApiError(404, 10062, "Unknown interaction")  # what Discord says after its 3 s
        body = req.json or {}
        kind, data = body.get("type"), body.get("data") or {}
        if kind not in ALLOWED_CALLBACKS[inter.type]:
            errors = FormErrors()
            errors.add(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                f"Callback type {kind} is not valid for interaction type {inter.type}",
            )
            errors.raise_if_any()

        message = self._respond(inter, kind, data, req)
        inter.callback = Callback(kind, data, req.files, call=req.call, delay=delay)
        summary: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        reply: dict[str, Any] = {"interaction": summary}
        if message is not None:
            summary.update(
                response_message_id=str(message.id),
                response_message_loading=message.loading,
                response_message_ephemeral=message.ephemeral,
            )
            reply["resource"] = {"type": kind, "message": message.to_payload()}
        return ok(reply)

    def _respond(
        self, inter: FakeInteraction, kind: int, data: dict[str, Any], req: Request
    ) -> Message | None:
        if kind == 4:
            inter.original = self._new_message(inter, data, req, followup=False)
        elif kind == 5:
            inter.original = self._new_message(inter, data, req, followup=False, placeholder=True)
        elif kind in (6, 7):
            if inter.source_message is None:
                raise ApiError(400, 50035, "Invalid Form Body: nothing to update")
            if kind == 7:
                self.writer.edit(inter.source_message, data, req.files)
            inter.original = inter.source_message
        elif kind == 8:
            check_choices(data)
        elif kind == 9:
            check_modal(data)
        return inter.original if kind in (4, 5, 7) else None

    def _new_message(
        self,
        inter: FakeInteraction,
        payload: dict[str, Any],
        req: Request,
        *,
        followup: bool,
        placeholder: bool = False,
    ) -> Message:
        if placeholder:  # "Bot is thinking...", ephemeral if the defer said so
            message = self.state.new_message(inter.channel, self.state.bot_user, via="interaction")
            message.flags = LOADING | ((payload.get("flags") or 0) & EPHEMERAL)
            message.snapshot()
        else:
            message = self.writer.create(inter.channel, payload, req.files, via="interaction")
        message.webhook_id = message.application_id = self.state.application_id
        command_kind = (inter.payload.get("data") or {}).get("type", 1)
        message.type = 0 if followup or inter.type != 2 else (20 if command_kind == 1 else 23)
        message.interaction_metadata = {
            "id": str(inter.id),
            "type": inter.type,
            "user": inter.plain_user.to_payload(),
            "authorizing_integration_owners": inter.payload.get(
                "authorizing_integration_owners", {}
            ),
        }
        if followup and inter.original is not None:
            message.interaction_metadata["original_response_message_id"] = str(inter.original.id)
        return message

    def _interaction(self, req: Request) -> FakeInteraction:
        if int(req.params["app"]) != self.state.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        inter = self.state.interactions.get(req.params["token"])
        if inter is None or inter.token_dead():
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return inter

    def _message(self, inter: FakeInteraction, message_id: str) -> Message:
        if message_id == "@original":
            message = inter.original
        else:
            message = next(
                (m for m in [inter.original, *inter.followups] if m and str(m.id) == message_id),
                None,
            )
        if message is None or message.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def followup(self, req: Request) -> Reply:
        inter = self._interaction(req)
        if inter.callback is None or inter.callback.type in (8, 9):
            raise ApiError(404, 10015, "Unknown Webhook")
        original = inter.original
        if original is not None and original.loading and not original.deleted:
            # Discord turns the "thinking" placeholder into the first follow-up.
            payload = {k: v for k, v in (req.json or {}).items() if k != "flags"}
            message = self.writer.edit(original, payload, req.files)
        else:
            message = self._new_message(inter, req.json or {}, req, followup=True)
        inter.followups.append(message)
        return (
            ok(message.to_payload())
            if req.query.get("wait") in ("1", "true", "True")
            else no_content()
        )

    async def get_message(self, req: Request) -> Reply:
        return ok(self._message(self._interaction(req), req.params["message"]).to_payload())

    async def edit_message(self, req: Request) -> Reply:
        message = self._message(self._interaction(req), req.params["message"])
        return ok(self.writer.edit(message, req.json, req.files).to_payload())

    async def delete_message(self, req: Request) -> Reply:
        self._message(self._interaction(req), req.params["message"]).deleted = True
        return no_content()
