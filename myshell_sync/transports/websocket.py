"""The WebSocket transport: ``text_chat`` on pooled Socket.IO connections.

``start()`` runs on the caller's thread: it takes a pooled connection free
for the bot, waits out the captcha delay of a fresh connection, signs and
sends ``text_chat``, and hands back the request's mailbox, which the
connection's reader thread fills. A connection that died before the request
went out is replaced; a sent request is never retried.
"""

from __future__ import annotations

import functools
import itertools
import json
import json.encoder
import logging
import time
from typing import Any, Callable

from .._config import ProxyConfig, VerifyTypes, tls_options
from .._constants import NAMESPACE, SIGNATURE_VERSION, SOURCE_FROM, WAIT_SLICE, WS_PATH
from .._deadline import Deadline, Limit
from .._exceptions import ClientClosedError
from .._models import models, resolve_model
from .._signing import generate_timestamp, sign
from .._wording import Wording
from ._connection import Connection
from ._identity import AccountEvents, Identity
from ._pool import Pool
from .base import Cancelled, ReplyHandle, Request, Transport

__all__ = ["WebSocketTransport", "ws_url"]

log = logging.getLogger("myshell_sync")


def ws_url(base_url: str) -> str:
    """The Engine.IO endpoint for ``base_url`` (``https`` gives ``wss``)."""
    scheme, rest = base_url.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + WS_PATH


class WebSocketTransport(Transport):
    """Chat over the Socket.IO ``/chat`` namespace."""

    name = "websocket"

    def __init__(
        self,
        base_url: str,
        *,
        identity: Identity,
        account: AccountEvents,
        closed: Any,
        proxy: ProxyConfig | None,
        verify: VerifyTypes,
        captcha_delay: float,
        max_connections: int,
        max_retries: int,
        idle_close: float | None,
        max_event_size: int,
    ) -> None:
        super().__init__()
        self.url = ws_url(base_url)
        self.captcha_delay = captcha_delay
        self._closed = closed
        self.pool = Pool(
            functools.partial(
                _open_connection,
                self.url,
                auth=functools.partial(_auth, identity),
                user_agent=identity.user_agent,
                options=_websocket_options(proxy, verify),
                on_account_event=account,
                max_frame_size=max_event_size,
            ),
            closed=closed,
            max_connections=max_connections,
            max_retries=max_retries,
            idle_close=idle_close,
        )

    def check_model(self, model: str | None) -> str:
        return resolve_model(model)

    def model_names(self) -> tuple[str, ...]:
        return tuple(models)

    def warm(self, model: str | None, deadline: Deadline) -> None:
        bot_uid = resolve_model(model)
        conn = self.pool.acquire(bot_uid, deadline)
        self.pool.release(conn, bot_uid)

    def start(self, request: Request, deadline: Deadline) -> _Handle:
        """Send ``text_chat`` on a pooled connection.

        A connection that died before the request went out (for example
        during the captcha delay) is replaced, up to ``max_retries`` times.
        """
        bot_uid = resolve_model(request.model)
        pool = self.pool
        for attempt in itertools.count():
            conn = pool.acquire(bot_uid, deadline)
            try:
                mailbox = conn.register(request.req_id)
                self._wait_for_captcha_delay(conn, deadline)
                if conn.alive or attempt >= pool.max_retries:
                    # The send counts against the wait for the first chunk.
                    first = deadline.within("first_chunk", deadline.timeout.first_chunk)
                    conn.emit_frame(_text_chat_frame(request, bot_uid), "text_chat", first)
                    return _Handle(pool, conn, request.req_id, bot_uid, mailbox)
            except BaseException:
                conn.unregister(request.req_id)
                pool.release(conn, bot_uid)
                raise
            log.info("connection died before request %s was sent; using another", request.req_id)
            conn.unregister(request.req_id)
            pool.release(conn, bot_uid)
        raise AssertionError("unreachable")

    def _wait_for_captcha_delay(self, conn: Connection, deadline: Deadline) -> None:
        """Sleep until ``captcha_delay`` has passed since ``conn`` connected."""
        assert conn.connected_at is not None
        end = conn.connected_at + self.captcha_delay
        while True:
            wait = end - time.monotonic()
            if wait <= 0:
                return
            if self._closed.wait(min(wait, WAIT_SLICE)):
                raise ClientClosedError()
            if deadline.cancelled.is_set():
                raise Cancelled()
            if deadline.expired():
                raise deadline.total().error(Wording("waiting out {s.captcha_delay} before the first request"))

    def close(self, timeout: float) -> None:
        self.pool.close(timeout)

    def reset_after_fork(self) -> None:
        self.pool.reset()

    def describe(self) -> str:
        return f"websocket, {len(self.pool.connections())} connections"


class _Handle(ReplyHandle):
    """A request sent on ``conn``; the bot stays busy there until it ends."""

    def __init__(self, pool: Pool, conn: Connection, req_id: str, bot_uid: str, mailbox: Any) -> None:
        self.mailbox = mailbox
        self.connected_at = time.monotonic()
        self._pool = pool
        self._conn = conn
        self._req_id = req_id
        self._bot_uid = bot_uid
        self._finished = False

    def finish(self, completed: bool) -> None:
        if self._finished:
            return
        self._finished = True
        if completed:
            self._conn.unregister(self._req_id)
            self._pool.release(self._conn, self._bot_uid)
        else:
            # The server is still writing this reply: the bot is busy on this
            # connection until it ends there.
            self._conn.abandon(self._req_id, functools.partial(self._pool.release, self._conn, self._bot_uid))

    def cancel(self) -> None:
        self._conn.cancel(self._req_id)


def _open_connection(
    url: str, limit: Limit, on_reader_start: Callable[[], None] | None = None, **options: Any
) -> Connection:
    """Open one connection. A module function: the pool must not hold the
    client alive (its finaliser closes the pool)."""
    conn = Connection(url, **options)
    conn.open(limit, on_reader_start)
    return conn


def _auth(identity: Identity) -> dict[str, Any]:
    """The Socket.IO CONNECT payload (read at each connect: the token may change)."""
    return {"token": identity.token, "visitorId": identity.visitor_id}


def _text_chat(request: Request, bot_uid: str) -> dict[str, Any]:
    """The signed ``text_chat`` payload (PROTOCOL.md 1.3)."""
    ts = generate_timestamp()
    return {
        "reqId": request.req_id,
        "botUid": bot_uid,
        "sourceFrom": SOURCE_FROM,
        "text": request.text,
        "signature": sign(request.text, ts),
        "timestamp": ts,
        "version": SIGNATURE_VERSION,
    }


def _text_chat_frame(request: Request, bot_uid: str) -> str:
    """``encode_event(NAMESPACE, "text_chat", _text_chat(...))`` built from
    its constant pieces: only the strings are JSON-encoded."""
    text = request.text
    ts = generate_timestamp()
    return "".join(
        (
            _TEXT_CHAT_HEAD,
            _json_str(request.req_id),
            ',"botUid":',
            _json_str(bot_uid),
            _SOURCE_FROM_TEXT,
            _json_str(text),
            ',"signature":"',
            sign(text, ts),
            '","timestamp":"',
            ts,
            _VERSION_TAIL,
        )
    )


_json_str = json.encoder.encode_basestring  # JSON string, ensure_ascii=False
_TEXT_CHAT_HEAD = "42" + NAMESPACE + ',["text_chat",{"reqId":'
_SOURCE_FROM_TEXT = ',"sourceFrom":' + json.dumps(SOURCE_FROM) + ',"text":'
_VERSION_TAIL = '","version":' + json.dumps(SIGNATURE_VERSION) + "}]"


def _websocket_options(proxy: ProxyConfig | None, verify: VerifyTypes) -> dict[str, Any]:
    """``websocket.create_connection`` arguments for the proxy and TLS settings."""
    options: dict[str, Any] = {}
    if proxy is not None:
        options.update(proxy.websocket_options())
    else:
        # Environment proxies were resolved by the client (or trust_env is
        # off), so websocket-client must not read them again. It honours its
        # no-proxy list only next to a proxy host: this one is never used.
        options.update(http_proxy_host="127.0.0.1", http_proxy_port=9, http_no_proxy=["*"])
    sslopt = tls_options(verify)
    if sslopt:
        options["sslopt"] = sslopt
    return options
