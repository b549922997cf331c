"""A readable account of an interaction, the way the user experienced it.

Meant for assertion messages and eyeballing, e.g.::

    bob: /dream image=cat.png preset=balanced  (#general)
      0.004s ack: deferred message (thinking)
      0.120s edit @original: "Queued: position 1"
      1.310s follow-up: "Done!"
             files: dream.png (2048 B, image/png)
             buttons: [Again] [Upscale]
      1.400s channel message: "<@42> your dream is ready"

Each line is rendered from the message *as it was after* that call, so an
edit that only adds a file still shows the whole message. Rejected calls
show their error instead. Channel posts in the interaction's channel that
mention the user (the "token expired, deliver it in the channel" path) are
included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import CALLBACK_NAMES, Call, iter_components

if TYPE_CHECKING:
    from .interaction import FakeInteraction
    from .state import State

INDENT = " " * 11  # lines up with the text after "  0.123s "


def render_interaction(state: State, inter: FakeInteraction) -> str:
    where = f"#{inter.channel.name}" if inter.channel.name else "DM"
    lines = [f"{inter.plain_user.name}: {inter.label}  ({where})"]
    mention = f"<@{inter.plain_user.id}>"
    channel_posts = [
        c
        for c in state.calls
        if c.route == "POST /channels/{channel}/messages"
        and c.path == f"/channels/{inter.channel.id}/messages"
        and c.t >= inter.created
        and mention in ((c.json or {}).get("content") or "")
    ]
    for call in sorted([*inter.calls, *channel_posts], key=lambda c: c.t):
        what = _describe(call)
        if what is None:
            continue
        head = f"  {call.t - inter.created:6.3f}s {what}"
        if not call.ok:
            message = (
                (call.response or {}).get("message")
                if isinstance(call.response, dict)
                else call.response
            )
            lines.append(f"{head} FAILED {call.status} {message}")
            continue
        body = _result_message(call)
        if body is None:
            lines.append(head + _callback_detail(call))
            continue
        first, *rest = render_message(body)
        lines.append(f"{head}: {first}")
        lines += [INDENT + line for line in rest]
    return "\n".join(lines)


def _describe(call: Call) -> str | None:
    route = call.route.split(" ", 1)[1] if " " in call.route else call.route
    if route.endswith("/callback"):
        return "ack"
    if call.method == "GET":
        return None
    if route == "/webhooks/{app}/{token}":
        return "follow-up"
    if route.startswith("/webhooks/"):
        target = (
            "@original"
            if call.path.endswith("/@original")
            else "follow-up " + call.path.rsplit("/", 1)[1]
        )
        return f"{'delete' if call.method == 'DELETE' else 'edit'} {target}"
    if route == "/channels/{channel}/messages":
        return "channel message"
    return f"{call.method} {call.path}"


def _callback_detail(call: Call) -> str:
    if not call.route.endswith("/callback"):
        return ""
    kind = (call.json or {}).get("type")
    data = (call.json or {}).get("data") or {}
    detail = f": {CALLBACK_NAMES.get(kind, kind)}"
    if data.get("flags", 0) & 64:
        detail += ", ephemeral"
    if kind == 8:
        detail += " " + ", ".join(f"{c['name']}={c['value']!r}" for c in data.get("choices", []))
    if kind == 9:
        detail += f" {data.get('title')!r} ({data.get('custom_id')})"
    return detail


def _result_message(call: Call) -> dict[str, Any] | None:
    body = call.response
    if not isinstance(body, dict):
        return None
    if "interaction" in body:
        resource = body.get("resource") or {}
        message = resource.get("message")
        if message is not None and message.get("flags", 0) & 128:
            return None  # a "thinking" placeholder: nothing to show yet
        return message
    return body if "content" in body else None


def render_message(message: dict[str, Any]) -> list[str]:
    """A message as short lines: content, embeds, files, components."""
    lines = [repr(message.get("content") or "")]
    if message.get("flags", 0) & 64:
        lines[0] += "  (ephemeral)"
    for embed in message.get("embeds") or []:
        parts = [embed.get("title"), embed.get("description")]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields") or []]
        if embed.get("image"):
            parts.append(f"image {embed['image'].get('url')}")
        if embed.get("footer"):
            parts.append(f"footer {embed['footer'].get('text')}")
        lines.append("embed: " + " | ".join(str(p) for p in parts if p))
    files = message.get("attachments") or []
    if files:
        lines.append(
            "files: "
            + ", ".join(
                f"{a['filename']} ({a['size']} B, {a.get('content_type', '?')})" for a in files
            )
        )
    buttons = [c for c in iter_components(message.get("components") or []) if c.get("type") == 2]
    if buttons:
        lines.append(
            "buttons: "
            + " ".join(
                f"[{_button_label(c)}]" if not c.get("disabled") else f"[~{_button_label(c)}~]"
                for c in buttons
            )
        )
    for select in (
        c
        for c in iter_components(message.get("components") or [])
        if c.get("type") in (3, 5, 6, 7, 8)
    ):
        options = ", ".join(o.get("value", "?") for o in select.get("options") or [])
        lines.append(f"select {select.get('placeholder') or select.get('custom_id')!r}: {options}")
    return lines


def _button_label(button: dict[str, Any]) -> str:
    return button.get("label") or (button.get("emoji") or {}).get("name") or "?"
