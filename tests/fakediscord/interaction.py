"""One injected interaction, seen from Discord's side: its token's whole story.

``webhooks.py`` fills it in as the bot answers (callback, @original, follow-ups);
tests read it and wait on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .models import Call, Callback, FakeChannel, FakeGuild, FakeMember, FakeUser, Message
from .transcript import render_interaction

if TYPE_CHECKING:
    from .state import State


class FakeInteraction:
    def __init__(
        self,
        state: State,
        payload: dict[str, Any],
        *,
        label: str,
        user: FakeMember | FakeUser,
        guild: FakeGuild | None,
        channel: FakeChannel,
        source_message: Message | None = None,
    ) -> None:
        self._state = state
        self.payload = payload  # exactly what INTERACTION_CREATE carried
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.label = label  # e.g. "/dream image=cat.png", for transcripts and errors
        self.user = user
        self.guild = guild
        self.channel = channel
        self.source_message = source_message  # the message a component/modal came from
        self.created = state.t()
        self.callback: Callback | None = None
        self.original: Message | None = None  # what @original points at, after every edit
        self.followups: list[Message] = []
        self.calls: list[Call] = []  # every REST call made with this token, in order
        self.expired = False

    def __repr__(self) -> str:
        return f"<FakeInteraction {self.label!r} id={self.id}>"

    @property
    def plain_user(self) -> FakeUser:
        return self.user.user if isinstance(self.user, FakeMember) else self.user

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """Autocomplete choices the bot returned (None until it answers)."""
        if self.callback is None or self.callback.type != 8:
            return None
        return list(self.callback.data.get("choices", []))

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot opened (callback type 9), if any."""
        if self.callback is None or self.callback.type != 9:
            return None
        return self.callback.data

    def token_dead(self) -> bool:
        return self.expired or self._state.t() - self.created > self._state.token_lifetime

    async def wait_callback(self, timeout: float = 5.0) -> Callback:
        """The first response; Discord wants it within 3 s of the interaction."""
        return await self._state.wait_until(
            lambda: self.callback, timeout, f"the callback to {self.label}", self.calls
        )

    async def wait_for(
        self,
        predicate: Callable[[list[Call]], Any],
        timeout: float = 5.0,
        what: str = "a condition",
    ) -> list[Call]:
        """Wait until ``predicate(self.calls)`` holds; returns the calls."""
        await self._state.wait_until(
            lambda: predicate(self.calls), timeout, f"{what} on {self.label}", self.calls
        )
        return self.calls

    async def wait_original(
        self, predicate: Callable[[Message], Any] | None = None, timeout: float = 5.0
    ) -> Message:
        """Wait until @original exists and ``predicate(original)`` holds.

        The default predicate waits until it is no longer the "thinking" placeholder.
        """
        check = predicate or (lambda m: not m.loading)

        def ready() -> Message | None:
            return self.original if self.original is not None and check(self.original) else None

        return await self._state.wait_until(
            ready, timeout, f"@original of {self.label} to match", self.calls
        )

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[Message]:
        await self._state.wait_until(
            lambda: len(self.followups) >= count,
            timeout,
            f"{count} follow-up(s) to {self.label}",
            self.calls,
        )
        return self.followups

    def transcript(self) -> str:
        """What the user saw, in order; see ``transcript.py``."""
        return render_interaction(self._state, self)
