"""Where a job's messages go: its interaction's reply while the token lives, the channel after.

A job outlives the `discord.Interaction` that asked for it: it waits in line,
it may be resumed by a bot that restarted, and Discord's interaction token dies
after 15 minutes. So a job keeps only what the wire needs (application id,
token, its expiry, channel, member) and reaches Discord through a partial
webhook on the token. Live and resumed jobs take the same path.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import discord

from dream_engine.service.job_store import JobRecord

if TYPE_CHECKING:
    from discord.ext import commands

log = logging.getLogger(__name__)

ORIGINAL = "@original"  # Discord's name for an interaction's first response
INVALID_WEBHOOK_TOKEN = 50027
MENTION_USER = discord.AllowedMentions(users=True, roles=False, everyone=False)


class JobReply:
    """The job's original response (edited in place), follow-ups, and the channel fallback."""

    def __init__(self, bot: commands.Bot, record: JobRecord) -> None:
        self._webhook = (
            discord.Webhook.partial(record.application_id, record.token, client=bot)
            if record.token
            else None
        )
        self._expires_at = record.token_expires_at
        self._bot = bot
        self._user_id = record.user_id
        # Where the bot is not a member (a user-installed app) it may not post in the
        # channel: once the token is dead, the member's DMs take the channel's place.
        self._channel: discord.abc.Messageable | None = (
            None if record.interaction_only else bot.get_partial_messageable(record.channel_id)
        )
        self.mention = f"<@{record.user_id}>"
        self._dead = False
        self.last_edit = 0.0  # monotonic time of the last successful edit
        self.message_id: int | None = None  # the message last edited or posted to the channel

    def token_alive(self) -> bool:
        return self._webhook is not None and not self._dead and time.time() < self._expires_at

    async def edit(self, **fields: Any) -> bool:
        """Edit the original response; False (and the token marked dead) if Discord won't."""
        if not self.token_alive():
            return False
        assert self._webhook is not None
        try:
            message = await self._webhook.edit_message(ORIGINAL, **fields)  # type: ignore[arg-type]
        except discord.HTTPException as error:
            if error.status in (401, 404) or error.code == INVALID_WEBHOOK_TOKEN:
                self._dead = True
            else:
                log.warning("could not edit a job's reply: %s", error)
            return False
        self.last_edit, self.message_id = time.monotonic(), message.id
        return True

    async def followup(self, content: str, **fields: Any) -> None:
        """A further message in the interaction (the gallery); raises if Discord refuses."""
        assert self._webhook is not None
        await self._webhook.send(content, **fields)

    async def to_channel(self, content: str, **fields: Any) -> None:
        """A message in the job's channel that mentions its member; raises if Discord refuses."""
        text = f"{self.mention} {content}"
        channel = await self._fallback()
        message = await channel.send(text, allowed_mentions=MENTION_USER, **fields)
        self.message_id = message.id

    async def send(self, content: str, **fields: Any) -> None:
        """After the result: follow-ups while the token lives, else the channel (no mention)."""
        if self.token_alive():
            await self.followup(content, **fields)
        else:
            await (await self._fallback()).send(content, **fields)

    async def _fallback(self) -> discord.abc.Messageable:
        """The job's channel, or for an interaction-only job the member's DMs (opened once)."""
        if self._channel is None:
            self._channel = await self._bot.create_dm(discord.Object(self._user_id))
        return self._channel
