"""The local server's switches, counters and records, and ``wait_for``.

``ServerState`` is the base of ``LocalMyshellServer``: tests set its switches
and read its counters from any thread. The protocol sides (Socket.IO, HTTP,
key-based) change it only through a ``Recorder``, from the server's loop
thread; every change holds the state's one condition and wakes every ``wait_for``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Callable, TypeVar

from ._rules import ERROR_EVENTS, MALFORMED_KINDS, Plan

__all__ = ["Recorder", "ServerState"]

_State = TypeVar("_State", bound="ServerState")


def _checked_status(name: str, value: int | None, lowest: int) -> int | None:
    """Validate a status-code switch: None or an int in ``lowest``..599."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= 599):
        raise ValueError(f"{name} must be None or an HTTP status {lowest}-599")
    return value


def _checked_str(name: str, value: str | None) -> str | None:
    """Validate a text switch: None or a str."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be None or a string")
    return value


def _checked_count(name: str, value: int | None) -> int | None:
    """Validate a count switch: None or an int >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be None or an integer >= 0")
    return value


class ServerState:
    """Switches (plain attributes, read once per request), counters and records.

    ``LocalMyshellServer`` gives every switch its value; its docstring says
    what each one does. Counters and records are read-only here; a
    ``Recorder`` changes them.
    """

    bots: dict[str, str]
    http_bots: dict[str, str]
    tokens: set[str] | None
    captcha_window: float
    energy: int | None
    error_after: int
    chunk_delay: float
    reply_delay: float
    drop_after: int | None
    http_retry_after: str | None
    refreshed_token: str | None
    missing_replied: bool
    truncate_utf8: bool
    widgets: dict[str, str]

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._error_event: str | None = None
        self._http_status: int | None = None
        self._ws_refuse_status: int | None = None
        self._connects = 0
        self._refused = 0
        self._disconnects = 0
        self._requests: list[Any] = []
        self._auths: list[Any] = []
        self._completed: list[str | None] = []
        self._active: set[str] = set()
        self._http_requests: list[dict[str, Any]] = []
        self._open_http_streams = 0
        self._http_cancelled = 0
        self._api_keys: set[str] = set()
        self._openapi_status: int | None = None
        self._openapi_status_times: int | None = None
        self._openapi_retry_after: str | None = "1"
        self._openapi_failure: str | None = None
        self._openapi_malformed: str | None = None
        self._openapi_delay = 0.0
        self._openapi_requests: list[dict[str, Any]] = []
        self._openapi_cancelled = 0
        self._http_connections = 0
        self._seen_transports: weakref.WeakSet[Any] = weakref.WeakSet()

    # ------------------------------------------------------------------
    # Switches with validation

    @property
    def error_event(self) -> str | None:
        """The event every text_chat is answered with, or None."""
        return self._error_event

    @error_event.setter
    def error_event(self, value: str | None) -> None:
        if value is not None and value not in ERROR_EVENTS:
            raise ValueError(f"error_event must be one of {sorted(ERROR_EVENTS)} or None")
        self._error_event = value

    @property
    def http_status(self) -> int | None:
        """The status every send_message is answered with, or None."""
        return self._http_status

    @http_status.setter
    def http_status(self, value: int | None) -> None:
        self._http_status = _checked_status("http_status", value, 400)

    @property
    def ws_refuse_status(self) -> int | None:
        """The status ``/ws/`` answers instead of upgrading, or None."""
        return self._ws_refuse_status

    @ws_refuse_status.setter
    def ws_refuse_status(self, value: int | None) -> None:
        self._ws_refuse_status = _checked_status("ws_refuse_status", value, 300)

    @property
    def api_keys(self) -> set[str]:
        """The keys the widget-run route accepts in ``x-myshell-openapi-key``."""
        return self._api_keys

    @api_keys.setter
    def api_keys(self, value: Iterable[str]) -> None:
        keys = None if isinstance(value, (str, bytes)) else set(value)
        if keys is None or not all(isinstance(key, str) for key in keys):
            raise ValueError("api_keys must be a collection of strings")
        self._api_keys = keys

    @property
    def openapi_status(self) -> int | None:
        """The status a widget run is answered with (see ``openapi_status_times``)."""
        return self._openapi_status

    @openapi_status.setter
    def openapi_status(self, value: int | None) -> None:
        self._openapi_status = _checked_status("openapi_status", value, 400)

    @property
    def openapi_status_times(self) -> int | None:
        """How many more widget runs get ``openapi_status`` (counts down); None: all."""
        with self._cond:
            return self._openapi_status_times

    @openapi_status_times.setter
    def openapi_status_times(self, value: int | None) -> None:
        with self._cond:
            self._openapi_status_times = _checked_count("openapi_status_times", value)

    @property
    def openapi_retry_after(self) -> str | None:
        """The ``Retry-After`` of an ``openapi_status`` 429; None omits it."""
        return self._openapi_retry_after

    @openapi_retry_after.setter
    def openapi_retry_after(self, value: str | None) -> None:
        self._openapi_retry_after = _checked_str("openapi_retry_after", value)

    @property
    def openapi_failure(self) -> str | None:
        """The message of a 200 ``{"success": false}`` answer to every widget run."""
        return self._openapi_failure

    @openapi_failure.setter
    def openapi_failure(self, value: str | None) -> None:
        self._openapi_failure = _checked_str("openapi_failure", value)

    @property
    def openapi_malformed(self) -> str | None:
        """The kind (``MALFORMED_KINDS``) of undocumented 200 body to answer, or None."""
        return self._openapi_malformed

    @openapi_malformed.setter
    def openapi_malformed(self, value: str | None) -> None:
        if value is not None and value not in MALFORMED_KINDS:
            raise ValueError(f"openapi_malformed must be one of {list(MALFORMED_KINDS)} or None")
        self._openapi_malformed = value

    @property
    def openapi_delay(self) -> float:
        """Seconds a widget run waits before it is answered."""
        return self._openapi_delay

    @openapi_delay.setter
    def openapi_delay(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError("openapi_delay must be a number of seconds >= 0")
        self._openapi_delay = float(value)

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
    def auths(self) -> list[Any]:
        """A copy of the auth payload of every /chat connect, refused ones too."""
        with self._cond:
            return list(self._auths)

    @property
    def requests(self) -> list[Any]:
        """A copy of every text_chat payload received, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def completed(self) -> list[str | None]:
        """reqIds whose handling ended (reply, error, drop or cancel), in order."""
        with self._cond:
            return list(self._completed)

    @property
    def active_sids(self) -> set[str]:
        """A copy of the /chat sids connected now."""
        with self._cond:
            return set(self._active)

    @property
    def http_requests(self) -> list[dict[str, Any]]:
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

    @property
    def openapi_requests(self) -> list[dict[str, Any]]:
        """Every widget run received: ``{"headers": {lower-cased}, "json", "input"}``.

        ``json`` is the body parsed (None if not JSON), ``input`` its ``input``
        field decoded (None if it is not JSON text). Refused requests count.
        """
        with self._cond:
            return list(self._openapi_requests)

    @property
    def openapi_cancelled(self) -> int:
        """How many widget runs the client gave up on during ``openapi_delay``."""
        with self._cond:
            return self._openapi_cancelled

    @property
    def http_connections(self) -> int:
        """How many TCP connections carried a request to an HTTP API route.

        The routes are send_message, the energy route and widget run; the
        Socket.IO side does not count. Keep-alive reuse does not add.
        """
        with self._cond:
            return self._http_connections

    def wait_for(self: _State, predicate: Callable[[_State], bool], timeout: float) -> bool:
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
            self._state._requests.append(dict(payload) if isinstance(payload, dict) else payload)

    def mark_done(self, req_id: str | None) -> None:
        """Note that the handling of a text_chat ended."""
        with self._changing():
            self._state._completed.append(req_id)

    def record_http_request(self, headers: dict[str, str], body: Any) -> None:
        """Keep a send_message's (lower-cased) headers and JSON body."""
        with self._changing():
            self._state._http_requests.append({"headers": headers, "json": body})

    def count_http_stream(self, opened: int = 0, cancelled: int = 0) -> None:
        """Add to the open-streams and the client-went-away counters."""
        with self._changing():
            self._state._open_http_streams += opened
            self._state._http_cancelled += cancelled

    def count_connection(self, transport: Any) -> None:
        """Count ``transport`` (a request's connection) the first time it is seen."""
        if transport is None:
            return
        with self._changing():
            if transport not in self._state._seen_transports:
                self._state._seen_transports.add(transport)
                self._state._http_connections += 1

    def record_openapi_request(self, headers: dict[str, str], body: Any, data: Any) -> None:
        """Keep a widget run's (lower-cased) headers, JSON body and decoded input."""
        with self._changing():
            self._state._openapi_requests.append({"headers": headers, "json": body, "input": data})

    def take_openapi_status(self) -> int | None:
        """The ``openapi_status`` this widget run gets, spending one of its times."""
        state = self._state
        with self._changing():
            status, times = state.openapi_status, state._openapi_status_times
            if status is None or times is None:
                return status
            if times <= 0:
                return None
            state._openapi_status_times = times - 1
            return status

    def count_openapi_cancelled(self) -> None:
        with self._changing():
            self._state._openapi_cancelled += 1

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the state lock; on exit wake every ``wait_for``."""
        with self._state._cond:
            yield
            self._state._cond.notify_all()
