"""The local server's switches, counters and records, and ``wait_for``.

``ServerState`` is the base of ``LocalMyshellServer``: tests set its switches
and read its counters from any thread. The Socket.IO and HTTP sides change
it only through a ``Recorder``, from the server's loop thread; every change
holds the state's one condition and wakes every ``wait_for``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, TypeVar

from ._rules import ERROR_EVENTS, Plan

__all__ = ["Recorder", "ServerState"]

_State = TypeVar("_State", bound="ServerState")


def _checked_status(name: str, value: Optional[int], lowest: int) -> Optional[int]:
    """Validate a status-code switch: None or an int in ``lowest``..599."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not lowest <= value <= 599):
        raise ValueError(f"{name} must be None or an HTTP status {lowest}-599")
    return value


class ServerState:
    """Switches (plain attributes, read once per request), counters and records.

    ``LocalMyshellServer`` gives every switch its value; its docstring says
    what each one does. Counters and records are read-only here; a
    ``Recorder`` changes them.
    """

    bots: Dict[str, str]
    http_bots: Dict[str, str]
    tokens: Optional[Set[str]]
    captcha_window: float
    energy: Optional[int]
    error_after: int
    chunk_delay: float
    reply_delay: float
    drop_after: Optional[int]
    http_retry_after: Optional[str]
    refreshed_token: Optional[str]
    missing_replied: bool
    truncate_utf8: bool

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._error_event: Optional[str] = None
        self._http_status: Optional[int] = None
        self._ws_refuse_status: Optional[int] = None
        self._connects = 0
        self._refused = 0
        self._disconnects = 0
        self._requests: List[Any] = []
        self._auths: List[Any] = []
        self._completed: List[Optional[str]] = []
        self._active: Set[str] = set()
        self._http_requests: List[Dict[str, Any]] = []
        self._open_http_streams = 0
        self._http_cancelled = 0

    # ------------------------------------------------------------------
    # Switches with validation

    @property
    def error_event(self) -> Optional[str]:
        """The event every text_chat is answered with, or None."""
        return self._error_event

    @error_event.setter
    def error_event(self, value: Optional[str]) -> None:
        if value is not None and value not in ERROR_EVENTS:
            raise ValueError(
                f"error_event must be one of {sorted(ERROR_EVENTS)} or None")
        self._error_event = value

    @property
    def http_status(self) -> Optional[int]:
        """The status every send_message is answered with, or None."""
        return self._http_status

    @http_status.setter
    def http_status(self, value: Optional[int]) -> None:
        self._http_status = _checked_status("http_status", value, 400)

    @property
    def ws_refuse_status(self) -> Optional[int]:
        """The status ``/ws/`` answers instead of upgrading, or None."""
        return self._ws_refuse_status

    @ws_refuse_status.setter
    def ws_refuse_status(self, value: Optional[int]) -> None:
        self._ws_refuse_status = _checked_status("ws_refuse_status", value, 300)

    # ------------------------------------------------------------------
    # Counters and records (read from any thread)

    @property
    def connects(self) -> int:
        """How many /chat namespace connects were accepted."""
        with self._cond:
            return self._connects

    @property
    def refused(self) -> int:
        """How many /chat namespace connects were refused."""
        with self._cond:
            return self._refused

    @property
    def disconnects(self) -> int:
        """How many /chat sids disconnected, for any reason."""
        with self._cond:
            return self._disconnects

    @property
    def auths(self) -> List[Any]:
        """A copy of the auth payload of every /chat connect, refused ones too."""
        with self._cond:
            return list(self._auths)

    @property
    def requests(self) -> List[Any]:
        """A copy of every text_chat payload received, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def completed(self) -> List[Optional[str]]:
        """reqIds whose handling ended (reply, error, drop or cancel), in order."""
        with self._cond:
            return list(self._completed)

    @property
    def active_sids(self) -> Set[str]:
        """A copy of the /chat sids connected now."""
        with self._cond:
            return set(self._active)

    @property
    def http_requests(self) -> List[Dict[str, Any]]:
        """Every send_message received: ``{"headers": {lower-cased}, "json"}``.

        ``json`` is None when the body was not JSON. Refused requests count.
        """
        with self._cond:
            return list(self._http_requests)

    @property
    def open_http_streams(self) -> int:
        """How many send_message responses are streaming now."""
        with self._cond:
            return self._open_http_streams

    @property
    def http_cancelled(self) -> int:
        """How many send_message streams ended because the client went away."""
        with self._cond:
            return self._http_cancelled

    def wait_for(self: _State, predicate: Callable[[_State], bool],
                 timeout: float) -> bool:
        """Block until ``predicate(self)`` is true; False if ``timeout`` passes."""
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate(self), timeout))


class Recorder:
    """What a protocol side does to a ``ServerState``: snapshot, spend, record.

    Every change holds the state's condition and wakes every ``wait_for``.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state

    def plan(self) -> Plan:
        """Snapshot the switches that shape a reply."""
        state = self._state
        return Plan(
            error_event=state.error_event,
            error_after=max(0, state.error_after),
            chunk_delay=state.chunk_delay,
            reply_delay=state.reply_delay,
            drop_after=state.drop_after,
            report_energy=state.energy is not None,
            missing_replied=state.missing_replied,
            truncate_utf8=state.truncate_utf8,
        )

    def take_energy(self) -> bool:
        """Spend one unit of the energy budget; False if none is left."""
        state = self._state
        with state._cond:
            if state.energy is None:
                return True
            if state.energy <= 0:
                return False
            state.energy -= 1
            return True

    def record_auth(self, auth: Any) -> None:
        """Keep a copy of a /chat connect's auth payload."""
        with self._changing():
            self._state._auths.append(dict(auth) if isinstance(auth, dict) else auth)

    def count_refused(self) -> None:
        with self._changing():
            self._state._refused += 1

    def count_connect(self, sid: str) -> None:
        with self._changing():
            self._state._connects += 1
            self._state._active.add(sid)

    def count_disconnect(self, sid: str) -> None:
        with self._changing():
            self._state._disconnects += 1
            self._state._active.discard(sid)

    def record_request(self, payload: Any) -> None:
        """Keep a copy of a text_chat payload."""
        with self._changing():
            self._state._requests.append(
                dict(payload) if isinstance(payload, dict) else payload)

    def mark_done(self, req_id: Optional[str]) -> None:
        """Note that the handling of a text_chat ended."""
        with self._changing():
            self._state._completed.append(req_id)

    def record_http_request(self, headers: Dict[str, str], body: Any) -> None:
        """Keep a send_message's (lower-cased) headers and JSON body."""
        with self._changing():
            self._state._http_requests.append({"headers": headers, "json": body})

    def count_http_stream(self, opened: int = 0, cancelled: int = 0) -> None:
        """Add to the open-streams and the client-went-away counters."""
        with self._changing():
            self._state._open_http_streams += opened
            self._state._http_cancelled += cancelled

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the state lock; on exit wake every ``wait_for``."""
        with self._state._cond:
            yield
            self._state._cond.notify_all()
