"""Discord's server-side limits, so the bot's mistakes fail here as they would live.

Only the limits a bot realistically trips over are checked: message length,
embed sizes, component layout, upload sizes, autocomplete choices, modals and
command registration. Errors carry the same status, code and ``errors`` tree
as Discord's, so discord.py raises the same ``HTTPException`` text.
"""

from __future__ import annotations

import re
from typing import Any

from .models import IS_COMPONENTS_V2, Upload, iter_components

COMMAND_NAME = re.compile(r"^[-_'\w\u0900-\u097F\u0E00-\u0E7F]{1,32}$")


class ApiError(Exception):
    """An error response: ``status`` and the JSON body Discord would send."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {message} (code {code})")
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors:
            self.body["errors"] = errors


class FormErrors:
    """Collects field errors into Discord's nested ``errors`` tree."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: str, code: str, message: str) -> None:
        """``path`` is dotted (``embeds.0.title``); "" is the body itself."""
        node = self.tree
        for part in path.split(".") if path else []:
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_len(self, path: str, value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def raise_if_any(self) -> None:
        if self.tree:
            raise ApiError(400, 50035, "Invalid Form Body", self.tree)


def check_uploads(uploads: list[Upload], limit: int) -> None:
    if len(uploads) > 10:
        errors = FormErrors()
        errors.add("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        errors.raise_if_any()
    if any(len(u.data) > limit for u in uploads) or sum(len(u.data) for u in uploads) > limit:
        raise ApiError(413, 40005, "Request entity too large")


def check_message(message: dict[str, Any]) -> None:
    """Validate the message as it would look after the request (content, embeds, components)."""
    errors = FormErrors()
    content = message.get("content") or ""
    embeds = message.get("embeds") or []
    components = message.get("components") or []
    v2 = bool((message.get("flags") or 0) & IS_COMPONENTS_V2)
    errors.max_len("content", content, 2000)
    if v2 and (content or embeds):
        errors.add(
            "content",
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used with MessageFlags.IS_COMPONENTS_V2",
        )
    _check_embeds(errors, embeds)
    _check_components(errors, components, v2)
    errors.raise_if_any()
    if not (
        content
        or embeds
        or components
        or message.get("attachments")
        or message.get("poll")
        or message.get("sticker_ids")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")


def _check_embeds(errors: FormErrors, embeds: list[dict[str, Any]]) -> None:
    if len(embeds) > 10:
        errors.add("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        base = f"embeds.{i}"
        for key, limit in (("title", 256), ("description", 4096)):
            errors.max_len(f"{base}.{key}", embed.get(key), limit)
            total += len(embed.get(key) or "")
        errors.max_len(f"{base}.author.name", (embed.get("author") or {}).get("name"), 256)
        errors.max_len(f"{base}.footer.text", (embed.get("footer") or {}).get("text"), 2048)
        total += len((embed.get("author") or {}).get("name") or "") + len(
            (embed.get("footer") or {}).get("text") or ""
        )
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors.add(f"{base}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for j, fld in enumerate(fields):
            errors.max_len(f"{base}.fields.{j}.name", fld.get("name"), 256)
            errors.max_len(f"{base}.fields.{j}.value", fld.get("value"), 1024)
            total += len(fld.get("name") or "") + len(fld.get("value") or "")
    if total > 6000:
        errors.add("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def _check_components(errors: FormErrors, components: list[dict[str, Any]], v2: bool) -> None:
    if not v2 and len(components) > 5:
        errors.add("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for i, row in enumerate(components):
        if not v2 and row.get("type") != 1:
            errors.add(
                f"components.{i}.type",
                "UNION_TYPE_CHOICES",
                "Top-level components must be action rows.",
            )
            continue
        children = row.get("components") or []
        if row.get("type") == 1:
            selects = [c for c in children if c.get("type") in (3, 5, 6, 7, 8)]
            if not children or len(children) > 5 or (selects and len(children) > 1):
                errors.add(
                    f"components.{i}.components",
                    "BASE_TYPE_BAD_LENGTH",
                    "An action row holds 1-5 buttons or exactly one select.",
                )
    for c in iter_components(components):
        custom_id = c.get("custom_id")
        if custom_id is not None:
            errors.max_len("components.custom_id", custom_id, 100)
            if custom_id in seen:
                errors.add(
                    "components.custom_id",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    f"Component custom id cannot be duplicated ({custom_id!r})",
                )
            seen.add(custom_id)
        if c.get("type") == 2:
            errors.max_len("components.label", c.get("label"), 80)
            if (c.get("style") == 5) != ("url" in c) or (
                c.get("style") not in (5, 6) and custom_id is None
            ):
                errors.add(
                    "components.style",
                    "BUTTON_COMPONENT_INVALID",
                    "Link buttons need a url and no custom_id; other buttons need a custom_id.",
                )
        if c.get("type") == 3:
            options = c.get("options") or []
            if not 1 <= len(options) <= 25:
                errors.add(
                    "components.options",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 25 in length.",
                )
            for opt in options:
                errors.max_len("components.options.label", opt.get("label"), 100)
                errors.max_len("components.options.value", opt.get("value"), 100)
                errors.max_len("components.options.description", opt.get("description"), 100)
        if c.get("type") in (3, 5, 6, 7, 8):
            errors.max_len("components.placeholder", c.get("placeholder"), 150)


def check_choices(data: dict[str, Any]) -> None:
    errors = FormErrors()
    choices = data.get("choices") or []
    if len(choices) > 25:
        errors.add("data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, choice in enumerate(choices):
        if not 1 <= len(choice.get("name") or "") <= 100:
            errors.add(
                f"data.choices.{i}.name",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        errors.max_len(f"data.choices.{i}.value", choice.get("value"), 100)
    errors.raise_if_any()


def check_modal(data: dict[str, Any]) -> None:
    errors = FormErrors()
    if not 1 <= len(data.get("title") or "") <= 45:
        errors.add("data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
    errors.max_len("data.custom_id", data.get("custom_id"), 100)
    if not 1 <= len(data.get("components") or []) <= 5:
        errors.add("data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    errors.raise_if_any()


def check_commands(commands: list[dict[str, Any]]) -> None:
    """The registration rules Discord enforces on a bulk overwrite."""
    errors = FormErrors()
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        kind = cmd.get("type", 1)
        name = cmd.get("name") or ""
        if (name, kind) in seen:
            errors.add(
                f"{i}.name",
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique ({name!r})",
            )
        seen.add((name, kind))
        if kind == 1:
            _check_chat_input(errors, str(i), cmd)
        elif not 1 <= len(name) <= 32:
            errors.add(f"{i}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
    errors.raise_if_any()


def _check_chat_input(errors: FormErrors, path: str, node: dict[str, Any]) -> None:
    name = node.get("name") or ""
    if not COMMAND_NAME.match(name) or name != name.lower():
        errors.add(
            f"{path}.name",
            "APPLICATION_COMMAND_INVALID_NAME",
            f"Command name is invalid ({name!r})",
        )
    if not 1 <= len(node.get("description") or "") <= 100:
        errors.add(
            f"{path}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
        )
    options = node.get("options") or []
    if len(options) > 25:
        errors.add(f"{path}.options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    optional_seen = False
    for j, opt in enumerate(options):
        opt_path = f"{path}.options.{j}"
        if opt.get("type") in (1, 2):
            _check_chat_input(errors, opt_path, opt)
            continue
        _check_chat_input(errors, opt_path, {**opt, "options": []})
        if opt.get("required"):
            if optional_seen:
                errors.add(
                    f"{opt_path}.required",
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            optional_seen = True
        choices = opt.get("choices") or []
        if len(choices) > 25:
            errors.add(
                f"{opt_path}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        if choices and opt.get("autocomplete"):
            errors.add(
                f"{opt_path}.autocomplete",
                "AUTOCOMPLETE_AND_CHOICES",
                "Autocomplete cannot be set for options that have choices.",
            )
