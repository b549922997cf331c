"""How a create or edit request changes a message, with Discord's rules.

One place for the semantics every message route shares (channel posts,
interaction callbacks, follow-ups, webhook edits):

* an edit only changes the fields it names; ``null`` clears them;
* ``attachments`` lists the files to keep (existing ids) and describes the
  new ones (``id`` = upload index); without it, uploads are appended;
* the result is validated (length limits, components, empty message, upload
  sizes) *before* the message changes, so a rejected request changes nothing
  a test can see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .models import (
    EPHEMERAL,
    IS_COMPONENTS_V2,
    LOADING,
    SUPPRESS_EMBEDS,
    FakeChannel,
    Message,
    StoredFile,
    Upload,
    iso_now,
)
from .state import State
from .validation import FormErrors, check_message, check_uploads

SUPPRESS_NOTIFICATIONS = 1 << 12
CREATE_FLAGS = EPHEMERAL | SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
EDIT_FLAGS = SUPPRESS_EMBEDS | IS_COMPONENTS_V2
MENTION = re.compile(r"<@!?(\d+)>")


@dataclass
class Draft:
    """A message's fields after a request, not yet applied."""

    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    files: list[StoredFile]
    flags: int


class MessageWriter:
    def __init__(self, state: State) -> None:
        self.state = state

    def create(
        self,
        channel: FakeChannel,
        payload: dict[str, Any] | None,
        uploads: list[Upload],
        *,
        via: str,
    ) -> Message:
        """Validate, then store a new message by the bot."""
        payload = payload or {}
        draft = self.draft(None, payload, uploads, flags=(payload.get("flags") or 0) & CREATE_FLAGS)
        message = self.state.new_message(channel, self.state.bot_user, via=via)
        if payload.get("message_reference"):
            message.message_reference = payload["message_reference"]
        self.apply(message, draft, edited=False)
        return message

    def edit(
        self, message: Message, payload: dict[str, Any] | None, uploads: list[Upload]
    ) -> Message:
        """PATCH semantics; an edit of a "thinking" placeholder turns it into a real message."""
        payload = payload or {}
        flags = message.flags & ~EDIT_FLAGS & ~LOADING
        if payload.get("flags") is not None:
            flags |= payload["flags"] & EDIT_FLAGS
        else:
            flags |= message.flags & EDIT_FLAGS
        draft = self.draft(message, payload, uploads, flags=flags)
        self.apply(message, draft, edited=not message.loading)
        return message

    def draft(
        self, message: Message | None, payload: dict[str, Any], uploads: list[Upload], *, flags: int
    ) -> Draft:
        check_uploads(uploads, self.state.attachment_size_limit)

        def field(key: str, empty: Any) -> Any:
            if key in payload:
                return payload[key] or empty  # null clears
            return getattr(message, key) if message else empty

        draft = Draft(
            content=field("content", ""),
            embeds=list(field("embeds", [])),
            components=list(field("components", [])),
            files=self._files(message, payload.get("attachments"), uploads),
            flags=flags,
        )
        check_message(
            {
                "content": draft.content,
                "embeds": draft.embeds,
                "components": draft.components,
                "flags": draft.flags,
                "attachments": draft.files,
                "poll": payload.get("poll"),
                "sticker_ids": payload.get("sticker_ids"),
            }
        )
        return draft

    def apply(self, message: Message, draft: Draft, *, edited: bool) -> None:
        message.content, message.embeds, message.components = (
            draft.content,
            draft.embeds,
            draft.components,
        )
        message.files, message.flags = draft.files, draft.flags
        message.mentions = [
            self.state.users[int(i)].to_payload()
            for i in MENTION.findall(draft.content)
            if int(i) in self.state.users
        ]
        if edited:
            message.edited_timestamp = iso_now()
        message.snapshot()

    def _files(
        self,
        message: Message | None,
        attachments: list[dict[str, Any]] | None,
        uploads: list[Upload],
    ) -> list[StoredFile]:
        current = list(message.files) if message else []
        by_index = {u.index: u for u in uploads}
        if attachments is None:
            return current + [self._store(u, None) for u in uploads]
        errors = FormErrors()
        kept: list[StoredFile] = []
        for i, ref in enumerate(attachments):
            ref_id = str(ref.get("id"))
            existing = next((f for f in current if str(f.id) == ref_id), None)
            if existing is not None:
                kept.append(existing)
            elif ref_id.isdigit() and int(ref_id) in by_index:
                kept.append(self._store(by_index.pop(int(ref_id)), ref))
            else:
                errors.add(
                    f"attachments.{i}.id", "ATTACHMENT_NOT_FOUND", f"Unknown attachment {ref_id}"
                )
        errors.raise_if_any()
        return kept + [self._store(u, None) for u in by_index.values()]

    def _store(self, upload: Upload, ref: dict[str, Any] | None) -> StoredFile:
        # discord.py labels every upload application/octet-stream; Discord sniffs the real type.
        sent_type = (
            None
            if upload.content_type in (None, "application/octet-stream")
            else upload.content_type
        )
        return self.state.store_file(
            (ref or {}).get("filename") or upload.filename,
            upload.data,
            sent_type,
            description=(ref or {}).get("description"),
        )
