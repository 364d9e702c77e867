"""The HTTP transport: ``POST /v1/bot/chat/send_message`` answered with SSE.

Each reply runs on its own daemon thread (``myshell-http-N``) that posts the
request with ``requests`` (``stream=True``), parses the server-sent events
incrementally, and puts the same ``(event_name, payload)`` batches into a
``queue.Queue`` as the WebSocket reader does, so ``iter_reply`` serves both
transports. SSE events are translated to their WebSocket twins:
``…_TEXT`` → ``text_stream``, ``…_USER_SENT_MESSAGE_REPLIED`` →
``message_replied``, ``…_ERROR`` → ``message_error``. Cancelling closes the
response, which releases (or discards) the pooled HTTP connection.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import queue
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from ._constants import CHAT_SEND_PATH, CONVERSATION_SCENARIO
from ._exceptions import (
    AuthenticationError,
    CaptchaRequiredError,
    ClientClosedError,
    ConnectionLostError,
    ConnectTimeoutError,
    InsufficientEnergyError,
    MyshellConnectionError,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    RateLimitError,
    ServerError,
)
from ._signing import generate_header_timestamp
from ._sse import SSEDecoder
from ._reply import DEAD, END, Batch

log = logging.getLogger("myshell_sync")

SSE_PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"
_READ_SIZE = 65536
_ERROR_BODY_LIMIT = 65536
_thread_ids = itertools.count(1)
# The reply whose thread is running here (each reply has a thread of its own).
_current = threading.local()


@dataclass(frozen=True)
class HttpRequest:
    req_id: str
    bot_id: str
    text: str
    connect_timeout: Optional[float]
    read_timeout: Optional[float]


class HttpTransport:
    """Sends chat requests over HTTP through one ``requests.Session``."""

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        *,
        headers: Callable[[], Dict[str, str]],
        on_account_event: Callable[[str, Any], None],
        on_token: Callable[[str], None],
        closed: threading.Event,
        max_retries: int,
        backoff: Callable[[int], float],
        max_event_size: int,
    ) -> None:
        self.url = base_url + CHAT_SEND_PATH
        self.session = session
        self._headers = headers
        self._on_account_event = on_account_event
        self._on_token = on_token
        self._closed = closed
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_event_size = max_event_size

        self._active: Set["HttpReply"] = set()
        self._lock = threading.Lock()

    def start(self, request: HttpRequest) -> "HttpReply":
        """Post ``request`` on a new thread; its events arrive in ``reply.mailbox``."""
        reply = HttpReply(self, request)
        with self._lock:
            if self._closed.is_set():
                raise ClientClosedError()
            self._active.add(reply)
        reply.thread.start()
        return reply

    def forget(self, reply: "HttpReply") -> None:
        with self._lock:
            self._active.discard(reply)

    def close(self) -> None:
        """Fail every reply in flight with ``ClientClosedError`` and stop it."""
        with self._lock:
            replies = list(self._active)
            self._active.clear()
        for reply in replies:
            reply.fail(ClientClosedError())


class HttpReply:
    """One request in flight: a mailbox fed by a background thread."""

    def __init__(self, transport: HttpTransport, request: HttpRequest) -> None:
        self._transport = transport
        self._request = request
        self.mailbox: "queue.Queue[Batch]" = queue.Queue()
        self._response: Optional[requests.Response] = None
        # The connection awaiting the response headers (before _response exists).
        self._conn: Optional[urllib3.connection.HTTPConnection] = None
        self._cancelled = threading.Event()
        self._finished = False  # TEXT_STREAM_PUSH_FINISHED was seen
        #: ``time.monotonic()`` when the response headers arrived.
        self.connected_at: Optional[float] = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._run, name=f"myshell-http-{next(_thread_ids)}", daemon=True
        )

    def fail(self, error: MyshellError) -> None:
        """Wake the consumer with ``error``, then stop the reply."""
        self.mailbox.put([(DEAD, error)])
        self.cancel()

    def cancel(self, timeout: float = 1.0) -> None:
        """Stop the reply: cut its connection and wait (bounded) for the thread.

        Only the reply's thread closes the response; here the socket is shut
        down, and only while the reply still holds the connection (the pool
        may have lent it to another reply since).
        """
        self._transport.forget(self)
        self._cancelled.set()
        with self._lock:
            response = self._response
            conn = self._conn
        if conn is not None:
            _cut_if_held(conn, self)
        elif response is not None:
            _shutdown(response)  # a connection this adapter does not track (SOCKS)
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    # -- the background thread -------------------------------------------------

    def _waiting_on(self, conn: urllib3.connection.HTTPConnection) -> None:
        """The request went out on ``conn``; its headers are awaited next."""
        with _holders_lock:
            _holders[conn] = self
        with self._lock:
            self._conn = conn
        if self._cancelled.is_set():
            _cut_if_held(conn, self)

    def _run(self) -> None:
        _current.reply = self
        try:
            response = self._post()
            self.connected_at = time.monotonic()
            with self._lock:
                self._response = response
            if self._cancelled.is_set():
                _close_quietly(response)
                return
            try:
                self._check_status(response)
                self._stream(response)
            finally:
                _close_quietly(response)
        except MyshellError as exc:
            self._put([(DEAD, exc)])
        except BaseException as exc:  # never die silently
            if self._cancelled.is_set():
                return
            log.debug("HTTP reply failed", exc_info=True)
            self._put([(DEAD, translate_error(exc, self._transport.url, self._request.connect_timeout))])

    def _put(self, batch: Batch) -> None:
        if not self._cancelled.is_set():
            self.mailbox.put(batch)

    def _post(self) -> requests.Response:
        transport = self._transport
        request = self._request
        body: Dict[str, Any] = {
            "botId": request.bot_id,
            "conversation_scenario": CONVERSATION_SCENARIO,
            "message": request.text,
            "messageType": 1,
        }
        for attempt in itertools.count():
            headers = transport._headers()
            headers["timestamp"] = generate_header_timestamp()
            try:
                return transport.session.post(
                    transport.url,
                    json=body,
                    headers=headers,
                    stream=True,
                    # A redirect could lead an https:// URL to http://: never follow one.
                    allow_redirects=False,
                    timeout=(request.connect_timeout, request.read_timeout),
                )
            except (requests.ConnectTimeout, requests.ConnectionError) as exc:
                # Only a failure to connect is safe to retry: nothing was sent.
                if not _never_sent(exc) or attempt >= transport._max_retries:
                    raise
                if transport._closed.wait(transport._backoff(attempt)) or self._cancelled.is_set():
                    raise ClientClosedError() from exc
                log.info("HTTP connect failed (%s); retry %d", exc, attempt + 1)
        raise AssertionError("unreachable")

    def _check_status(self, response: requests.Response) -> None:
        token = response.headers.get("refreshed-auth-token")
        if token:
            self._transport._on_token(token)
        if response.status_code < 300:
            return
        raise status_error(response, self._request.req_id)

    def _stream(self, response: requests.Response) -> None:
        """Feed the mailbox until the reply ends; EOF too early is an error."""
        decoder = SSEDecoder(max_event_size=self._transport._max_event_size)
        read = _reader(response)
        self._finished = False
        while True:
            data = read(_READ_SIZE)
            events = decoder.feed(data) if data else decoder.flush()
            batch, ended = self._translate_events(events)
            if batch:
                self._put(batch)
            if ended:
                return
            if not data:
                break
        if self._finished:
            self._put([(END, None)])
        else:
            self._put([(DEAD, ConnectionLostError(
                "the HTTP stream ended before the reply was complete; retry the call"
            ))])

    def _translate_events(self, events: List[Any]) -> Tuple[Batch, bool]:
        """Mailbox items for ``events``, and whether the reply ended with them."""
        batch: Batch = []
        for event in events:
            name = event.event
            kind = name[len(SSE_PREFIX):] if name.startswith(SSE_PREFIX) else name
            if kind in _IGNORED:
                continue
            envelope = event.json()
            if not isinstance(envelope, dict):
                raise ProtocolError(f"SSE event {name} data is not a JSON object")
            if kind == "TEXT":
                content = envelope.get("content")
                if not isinstance(content, str):
                    raise ProtocolError(f"SSE event {name} has no string content")
                batch.append(("text_stream", (content, False)))
            elif kind == "TEXT_STREAM_PUSH_FINISHED":
                self._finished = True  # REPLIED may still follow; EOF now ends well
            elif kind == "USER_SENT_MESSAGE_REPLIED":
                message = envelope.get("message")
                batch.append(("message_replied", {"data": message if isinstance(message, dict) else {}}))
                return batch, True
            elif kind == "ERROR":
                batch.append(("message_error", {"message": _sse_error_message(envelope)}))
                return batch, True
            elif kind in ("USER_CONSUMED_ENERGY", "CHAT_CONSUMED_ENERGY"):
                self._transport._on_account_event("energy_info", {"data": envelope.get("userEnergyInfo")})
            else:
                log.debug("ignored SSE event %s", name)
        return batch, False


# Events with no bearing on the text of the reply.
_IGNORED = frozenset(("USER_SENT_MESSAGE_CREATED", "USER_SENT_MESSAGE_REPLYING"))


def status_error(response: requests.Response, req_id: Optional[str] = None) -> MyshellError:
    """The typed error for an HTTP error status (reads a bounded body)."""
    status = response.status_code
    if 300 <= status < 400:
        return MyshellConnectionError(
            f"HTTP {status}: the server redirected to {response.headers.get('Location')!r}; "
            "redirects are not followed, so an https:// URL is never downgraded: check base_url",
            status_code=status,
            req_id=req_id,
        )
    body = _bounded_body(response)
    reason, message = _json_reason(body)
    detail = f"HTTP {status}" + (f" {reason}" if reason else "") + (f": {message}" if message else "")
    if status == 407:
        return MyshellConnectionError(
            "HTTP 407: the proxy demands credentials; use proxy=\"http://user:pass@host:port\"",
            req_id=req_id,
        )
    if status == 401:
        return AuthenticationError(f"{detail}; pass token= or set MYSHELL_TOKEN", req_id=req_id)
    if status == 429:
        return RateLimitError(
            f"{detail}; slow down and retry later",
            retry_after=_retry_after(response.headers.get("Retry-After")),
            req_id=req_id,
        )
    if "NEED_VERIFY_CAPTCHA" in reason:
        return CaptchaRequiredError(f"{detail}; wait a while, or log in with token=", req_id=req_id)
    if reason == "ERROR_REASON_USER_NOT_ENOUGH_ENERGY":
        return InsufficientEnergyError(
            f"{detail}; wait for the daily refill or use another account", req_id=req_id
        )
    if status == 403 and response.headers.get("cf-mitigated"):
        return CaptchaRequiredError(
            f"HTTP 403: the server served a browser challenge (cf-mitigated: "
            f"{response.headers['cf-mitigated']}); this client cannot solve it — try "
            "again later, from another network, or with a logged-in token",
            req_id=req_id,
        )
    if status >= 500:
        return ServerError(f"{detail}; retry later", req_id=req_id)
    return ServerError(f"{detail}; check the request (model, token)", req_id=req_id)


def _bounded_body(response: requests.Response) -> str:
    try:
        data = response.raw.read(_ERROR_BODY_LIMIT, decode_content=True)
    except Exception:  # the body is only used for the message
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else ""


def _json_reason(body: str) -> Tuple[str, str]:
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    reason = data.get("reason")
    message = data.get("message")
    return (reason if isinstance(reason, str) else "", message if isinstance(message, str) else "")


def _retry_after(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: not worth a dependency


def _sse_error_message(envelope: Dict[str, Any]) -> str:
    status = envelope.get("status")
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return status["message"]
    reason = envelope.get("errorReason")
    return reason if isinstance(reason, str) and reason else "no message from the server"


def _reader(response: requests.Response) -> Callable[[int], bytes]:
    """A read that returns whatever has arrived (never waits to fill ``amt``)."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return lambda amt: read1(amt, decode_content=True)
    chunks = response.iter_content(chunk_size=None)
    return lambda amt: next(chunks, b"")


def _never_sent(exc: BaseException) -> bool:
    """True when requests failed while connecting (the request never left)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ProxyError) or isinstance(exc, requests.exceptions.SSLError):
        return False
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", None)
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


def translate_error(exc: BaseException, url: str, connect_timeout: Optional[float]) -> MyshellError:
    """Map a requests/urllib3 exception to ours, at this one boundary."""
    if isinstance(exc, requests.ConnectTimeout):
        return ConnectTimeoutError(
            f"connecting to {url} took longer than {connect_timeout}s; "
            "raise Timeout.connect or check the network"
        )
    if isinstance(exc, requests.ReadTimeout):
        return MyshellTimeoutError(f"the server sent nothing for too long on {url}; retry later")
    if isinstance(exc, requests.exceptions.ProxyError):
        return MyshellConnectionError(f"the proxy refused the connection to {url}: {exc}")
    if isinstance(exc, requests.exceptions.SSLError):
        return MyshellConnectionError(f"TLS failed for {url}: {exc}; check verify=")
    if isinstance(exc, requests.ConnectionError) and _never_sent(exc):
        return MyshellConnectionError(
            f"cannot connect to {url}: {exc}; check base_url, the network and the proxy"
        )
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return MyshellTimeoutError(f"the server sent nothing for too long on {url}; retry later")
    if isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)):
        return ConnectionLostError(f"the HTTP connection to {url} dropped: {exc}")
    if isinstance(exc, UnicodeDecodeError):
        return ProtocolError(f"the server sent an SSE stream that is not UTF-8: {exc}")
    return MyshellError(f"the HTTP reply failed: {exc!r}")


class _WatchedConnection:
    """Tells the running reply which connection awaits the response headers,
    so that its ``cancel()`` can wake the thread blocked there."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        reply = getattr(_current, "reply", None)
        if reply is not None:
            reply._waiting_on(self)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_WatchedConnection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


class _ReleasingPool:
    """A connection given back to the pool no longer belongs to its reply."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            with _holders_lock:
                _holders.pop(conn, None)
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_ReleasingPool, urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_ReleasingPool, urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_WATCHED_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class CancellableAdapter(HTTPAdapter):
    """requests' adapter whose connections a reply can cut before any
    header arrived (for SOCKS proxies the read timeout remains the bound)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def close(self) -> None:
        """Close the idle pooled connections too: urllib3 2.x leaves their
        sockets to the garbage collector."""
        for manager in [self.poolmanager, *self.proxy_manager.values()]:
            pools = manager.pools
            for key in pools.keys():
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        super().close()


# Which reply holds each tracked connection, from its request until the
# connection goes back to the pool (urllib3 does that from inside a read once
# the body is complete, so the reply cannot tell by itself).
_holders: "weakref.WeakKeyDictionary[Any, HttpReply]" = weakref.WeakKeyDictionary()
_holders_lock = threading.Lock()


def _cut_if_held(conn: urllib3.connection.HTTPConnection, reply: HttpReply) -> None:
    """Shut ``conn``'s socket down (waking the thread reading it) if ``reply``
    still holds it."""
    with _holders_lock:
        if _holders.get(conn) is not reply:
            return
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass


def _shutdown(response: requests.Response) -> None:
    """Wake the thread blocked reading ``response`` and drop its connection."""
    shutdown = getattr(response.raw, "shutdown", None)  # urllib3 >= 2.3
    if shutdown is not None:
        try:
            shutdown()
        except Exception:  # already closed
            pass
    _close_quietly(response)


def _close_quietly(response: requests.Response) -> None:
    try:
        response.close()
    except Exception:  # closing a broken connection may fail; it is gone either way
        log.debug("closing an HTTP response failed", exc_info=True)
