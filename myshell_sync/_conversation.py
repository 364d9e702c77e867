"""``Conversation``: the history of one chat, kept by the client side.

Built on the public client only: each ``send()`` is ``client.stream()``
with the system message, the history and the new user turn. The turn joins
the history only once its reply completed; a failed, cancelled or abandoned
reply leaves the history as it was. The history travels however the
client's transport sends messages: as ``memory`` on the key-based API, as
the flattened prompt (``format_prompt``) on the WebSocket and HTTP chat APIs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._exceptions import ConversationBusyError
from ._models import validate_messages

if TYPE_CHECKING:
    from ._client import Myshell
    from ._stream import Stream

__all__ = ["Conversation"]

_TURN_ROLES = ("user", "assistant")


class Conversation:
    """A chat with one model that remembers its turns.

    Not thread-safe by itself: one ``send()`` at a time (a second while a
    reply is still open raises ``ConversationBusyError``). The history is a
    list of ``{"role", "content"}`` dicts that ``json.dumps`` round-trips, so
    a saved one resumes with ``Conversation(client, model, history=...)``.
    """

    def __init__(
        self,
        client: Myshell,
        model: str | None = None,
        *,
        system: str | None = None,
        history: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a str, not {type(system).__name__}")
        turns = [dict(message) for message in (history or [])]
        if turns:
            validate_messages(turns)
            for index, message in enumerate(turns):
                if message["role"] not in _TURN_ROLES:
                    raise ValueError(
                        f"history[{index}]['role'] is {message['role']!r}: the history holds user and "
                        "assistant turns; pass the system message as system="
                    )
        self.client = client
        self.model = model
        self.system = system
        self._history: list[dict[str, str]] = turns
        self._lock = threading.Lock()
        self._busy = False

    @property
    def history(self) -> list[dict[str, str]]:
        """The completed turns, oldest first (a copy)."""
        return [dict(message) for message in self._history]

    def messages(self, text: str) -> list[dict[str, str]]:
        """What ``send(text)`` sends: the system message, the history, the turn."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history + [{"role": "user", "content": text}]

    def send(self, text: str, **options: Any) -> Stream:
        """Send the next user turn; iterate the returned stream for the reply.

        ``options`` are those of ``Myshell.stream`` (``timeout``, the
        generation settings). Close the stream (or use it in ``with``) if
        you stop reading it early: until it ends, the conversation is busy.
        """
        with self._lock:
            if self._busy:
                raise ConversationBusyError(
                    "this conversation is still waiting for a reply: finish or close that stream "
                    "before sending the next turn (a conversation is not thread-safe)"
                )
            self._busy = True
        try:
            stream = self.client.stream(self.model, self.messages(text), **options)
        except BaseException:
            self._busy = False
            raise
        stream._on_end.append(lambda completed: self._turn_ended(text, stream, completed))
        return stream

    def _turn_ended(self, text: str, stream: Stream, completed: bool) -> None:
        if completed:
            self._history += [{"role": "user", "content": text}, {"role": "assistant", "content": stream.text}]
        self._busy = False

    def reset(self) -> None:
        """Forget every turn (the system message stays)."""
        self._history = []

    def __repr__(self) -> str:
        return f"<Conversation model={self.model!r} turns={len(self._history) // 2}>"
