"""One deadline per call: the limits of ``Timeout``, started when the call starts.

A ``Deadline`` is created when a call begins and passed to every step that
waits (pool acquire, connect attempts, backoff sleeps, the captcha delay,
sends, the reply's events), so ``Timeout.total`` bounds them all and each
timeout names the limit that actually ran out. It is pure: the clock is
injected, nothing here sleeps or does I/O.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, NamedTuple, Optional, Type

from ._config import Timeout
from ._exceptions import MyshellTimeoutError

__all__ = ["Deadline", "Limit"]

# What to do when each limit runs out.
_ADVICE = {
    "connect": "check the server and the network, or raise Timeout.connect",
    "first_chunk": "the bot may be busy: retry, or raise Timeout.first_chunk",
    "idle": "the bot may be busy: retry, or raise Timeout.idle",
    "total": "raise Timeout.total",
}


class Limit(NamedTuple):
    """A bounded wait: ``seconds`` left (None: no limit) and which limit it is."""

    seconds: Optional[float]
    name: str  # a Timeout field: connect, first_chunk, idle or total
    configured: Optional[float]  # that field's value

    def error(
        self, what: str, cls: Type[MyshellTimeoutError] = MyshellTimeoutError, req_id: Optional[str] = None
    ) -> MyshellTimeoutError:
        """The timeout error for ``what`` (e.g. "connecting to ...") running out of this limit."""
        configured = "" if self.configured is None else f" of {self.configured:g}s"
        return cls(
            f"{what} ran out of Timeout.{self.name}{configured}; {_ADVICE[self.name]}",
            req_id=req_id,
        )


class Deadline:
    """The waits of one call, measured from its start on ``clock``.

    ``cancelled`` is set when the caller abandons the call from another
    thread (``Stream.close()``); long waits check it.
    """

    __slots__ = ("timeout", "started", "cancelled", "_clock")

    def __init__(self, timeout: Timeout, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self.started = clock()
        self.cancelled = threading.Event()

    def now(self) -> float:
        return self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def total(self) -> Limit:
        """What is left of ``Timeout.total``."""
        total = self.timeout.total
        left = None if total is None else max(total - self.elapsed(), 0.0)
        return Limit(left, "total", total)

    def within(self, name: str, seconds: Optional[float]) -> Limit:
        """The wait for ``Timeout.<name>`` (``seconds`` of it left), capped by the total."""
        total = self.total()
        if total.seconds is not None and (seconds is None or total.seconds <= seconds):
            return total
        return Limit(seconds, name, getattr(self.timeout, name))

    def connect(self) -> Limit:
        """The wait for one connect attempt (or for a pooled connection)."""
        return self.within("connect", self.timeout.connect)

    def expired(self) -> bool:
        """True once ``Timeout.total`` has run out."""
        return self.total().seconds == 0.0
