"""``transport="auto"``: the WebSocket, falling back to HTTP when it is refused.

The fallback happens only when the WebSocket endpoint itself is refused (an
upgrade answered 403, 404 or 426), before anything was sent, and then for
good (logged once). An authentication failure is never a reason to switch:
it would fail the same way over HTTP. A reply never switches midway. The
default model is the WebSocket's on both sides, so ``model=None`` never
silently changes bot: after a fallback a model with no HTTP id fails
before anything is sent, naming ``http_bot_ids``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

from .._deadline import Deadline
from .._exceptions import MyshellConnectionError, UnsupportedModelError
from .._models import DEFAULT_MODEL
from .base import ReplyHandle, Request, Transport

__all__ = ["AutoTransport", "FALLBACK_STATUSES"]

log = logging.getLogger("myshell_sync")

#: WebSocket upgrade statuses after which the client switches to HTTP.
FALLBACK_STATUSES = (403, 404, 426)


class AutoTransport(Transport):
    """A composite of the WebSocket transport and an HTTP one made on demand."""

    name = "auto"

    def __init__(self, websocket: Transport, make_http: Callable[[], Transport]) -> None:
        super().__init__()
        self.websocket = websocket
        self._make_http = make_http
        self._http: Transport | None = None
        self._lock = threading.Lock()
        self.fell_back = False

    @property
    def http(self) -> Transport:
        with self._lock:
            if self._http is None:
                self._http = self._make_http()
            return self._http

    def check_model(self, model: str | None) -> str:
        if self.fell_back:
            return self.http.check_model(model or DEFAULT_MODEL)
        try:
            return self.websocket.check_model(model)
        except UnsupportedModelError:
            return self.http.check_model(model)  # a numeric id: an HTTP-only bot

    def model_names(self) -> tuple[str, ...]:
        return self.websocket.model_names()  # the names fall back to HTTP as they are

    def start(self, request: Request, deadline: Deadline) -> ReplyHandle:
        if not self.fell_back:
            try:
                self.websocket.check_model(request.model)
            except UnsupportedModelError:
                return self.http.start(request, deadline)  # an HTTP-only bot id
            try:
                return self.websocket.start(request, deadline)
            except MyshellConnectionError as exc:
                if exc.status_code not in FALLBACK_STATUSES:
                    raise
                self._fall_back(exc)
            try:  # nothing was sent yet: a model HTTP cannot serve fails now, on its own
                self.check_model(request.model)
            except UnsupportedModelError as exc:
                raise exc from None
        return self.http.start(dataclasses.replace(request, model=request.model or DEFAULT_MODEL), deadline)

    def _fall_back(self, exc: MyshellConnectionError) -> None:
        with self._lock:
            first, self.fell_back = not self.fell_back, True
        if first:
            log.warning("the WebSocket was refused (%s); this client uses HTTP from now on", exc)

    def warm(self, model: str | None, deadline: Deadline) -> None:
        if not self.fell_back:
            self.websocket.warm(model, deadline)

    def close(self, timeout: float) -> None:
        with self._lock:
            http = self._http
        try:
            self.websocket.close(timeout)
        finally:
            if http is not None:
                http.close(timeout)

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()  # the parts reset themselves

    def describe(self) -> str:
        side = "http (fell back)" if self.fell_back else self.websocket.describe()
        return f"auto: {side}"
