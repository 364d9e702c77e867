"""Stop strings, applied on the client side: MyShell has none of its own.

Pure, no I/O; used by the OpenAI-compatible layer and the integrations.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopScanner"]


class StopScanner:
    """Cuts a stream of text at the first of ``stops``.

    ``feed(chunk)`` returns the text that is safe to pass on now: it holds back
    a tail that could still turn into a stop string. ``stopped`` is True once
    one matched (the rest of the reply is to be dropped); ``flush()`` returns
    what was held back, when the reply ends without a match.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.stopped = False
        self._held = ""
        self._keep = max((len(stop) for stop in self.stops), default=1) - 1

    def feed(self, chunk: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return chunk
        text = self._held + chunk
        cut = min((index for index in (text.find(stop) for stop in self.stops) if index >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        # keep only a tail that is a prefix of some stop string
        keep = 0
        for length in range(min(self._keep, len(text)), 0, -1):
            tail = text[-length:]
            if any(stop.startswith(tail) for stop in self.stops):
                keep = length
                break
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held
