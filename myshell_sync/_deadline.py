"""One deadline per call: the limits of ``Timeout``, started when the call starts.

A ``Deadline`` is created when a call begins and passed to every step that
waits (pool acquire, connect attempts, backoff sleeps, the captcha delay,
sends, the reply's events), so ``Timeout.total`` bounds them all and each
timeout names the limit that actually ran out. It is pure: the clock is
injected, nothing here sleeps or does I/O.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

from ._config import Timeout
from ._exceptions import MyshellTimeoutError
from ._wording import Wording

__all__ = ["Deadline", "Limit"]

# What to do when each limit runs out (settings named as ``_wording`` fields).
_ADVICE = {
    "connect": "check the server and the network, or raise {s.timeout_connect}",
    "first_chunk": "the bot may be busy: retry, or raise {s.timeout_first_chunk}",
    "idle": "the bot may be busy: retry, or raise {s.timeout_idle}",
    "total": "raise {s.timeout_total}",
}


class Limit(NamedTuple):
    """A bounded wait: ``seconds`` left (None: no limit) and which limit it is.

    A connect attempt's limit also says which ``attempt`` it is (1-based) of
    how many the call may make (``attempts``), so a timeout after retries
    says so.
    """

    seconds: float | None
    name: str  # a Timeout field: connect, first_chunk, idle or total
    configured: float | None  # that field's value
    attempt: int = 1
    attempts: int = 1

    def error(
        self,
        what: str | Wording,
        cls: type[MyshellTimeoutError] = MyshellTimeoutError,
        req_id: str | None = None,
    ) -> MyshellTimeoutError:
        """The timeout error for ``what`` (e.g. "connecting to ...") running out of this limit."""
        wording = what if isinstance(what, Wording) else Wording("{what}", {"what": what})
        template = f" ran out of {{s.timeout_{self.name}}}"
        if self.configured is not None:
            template += " of {configured:g}s"
        if self.attempts > 1:
            per = "per attempt; " if self.name == "connect" else ""
            template += f" ({per}attempt {{attempt}} of {{attempts}})"
        template += "; " + _ADVICE[self.name]
        error = cls(
            wording.extended(template, configured=self.configured, attempt=self.attempt, attempts=self.attempts),
            req_id=req_id,
        )
        error.limit = self.name
        error.limit_seconds = self.configured
        return error


class Flag:
    """A flag set once from any thread: ``threading.Event``'s ``set`` and
    ``is_set`` without the ``Condition`` an Event builds (nothing waits on it)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


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
        self.cancelled = Flag()

    def now(self) -> float:
        return self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def total(self) -> Limit:
        """What is left of ``Timeout.total``."""
        total = self.timeout.total
        left = None if total is None else max(total - self.elapsed(), 0.0)
        return Limit(left, "total", total)

    def within(self, name: str, seconds: float | None) -> Limit:
        """The wait for ``Timeout.<name>`` (``seconds`` of it left), capped by the total."""
        total = self.total()
        if total.seconds is not None and (seconds is None or total.seconds <= seconds):
            return total
        return Limit(seconds, name, getattr(self.timeout, name))

    def connect(self, attempt: int = 1, attempts: int = 1) -> Limit:
        """The wait for connect attempt ``attempt`` of at most ``attempts``
        (or for a pooled connection)."""
        return self.within("connect", self.timeout.connect)._replace(attempt=attempt, attempts=attempts)

    def expired(self) -> bool:
        """True once ``Timeout.total`` has run out."""
        total = self.timeout.total
        return total is not None and self._clock() - self.started >= total
