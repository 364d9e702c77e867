"""The HTTP transport: ``POST /v1/bot/chat/send_message`` answered with SSE.

Each reply runs on its own daemon thread (``myshell-http-N``) that posts the
request with ``requests`` (``stream=True``), parses the server-sent events
incrementally, and puts the same ``(event_name, payload)`` batches into a
``queue.Queue`` as the WebSocket reader does, so ``iter_reply`` serves both
transports. SSE events are translated to their WebSocket twins:
``…_TEXT`` → ``text_stream``, ``…_USER_SENT_MESSAGE_REPLIED`` →
``message_replied``, ``…_ERROR`` → ``message_error``. After the reply the
body is read to its end (bounded), so trailing events such as
``…_USER_CONSUMED_ENERGY`` are seen and the connection goes back to the
pool. Cancelling cuts the connection the reply still holds.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

import requests

from .._constants import CHAT_SEND_PATH, CLIENT_VERSION, CONVERSATION_SCENARIO, ENERGY_PATH, FINAL_GRACE, SERVICE_NAME
from .._deadline import Deadline
from .._exceptions import ClientClosedError, ConnectionLostError, MyshellError, ProtocolError
from .._models import resolve_http_model
from .._signing import generate_header_timestamp
from .._sse import SSEDecoder, ServerSentEvent
from ._http_errors import never_sent, status_error, translate_error
from ._identity import AccountEvents, Identity
from ._requests_adapter import close_quietly, cut_if_held, hold, shutdown_response, watch
from ._session import SessionHolder
from .base import CANCELLED, DEAD, END, Batch, ReplyHandle, Request, Transport

__all__ = ["HttpTransport", "fetch_energy", "http_headers", "SSE_PREFIX"]

log = logging.getLogger("myshell_sync")

SSE_PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"
_READ_SIZE = 65536
# After the reply, at most this much more of the body is read (to reuse the
# connection), for at most FINAL_GRACE seconds.
_DRAIN_LIMIT = 65536
_thread_ids = itertools.count(1)


def http_headers(identity: Identity) -> Dict[str, str]:
    """The headers the web app sends with every API request."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": identity.user_agent,
        "myshell-service-name": SERVICE_NAME,
        "visitor-id": identity.visitor_id,
        "platform": "web",
        "version": "1.0.0",
        "myshell-client-version": CLIENT_VERSION,
        "Accept-Language": "en",
    }
    if identity.token:
        headers["Authorization"] = f"Bearer {identity.token}"
    return headers


class HttpTransport(Transport):
    """Sends chat requests over HTTP through the client's ``requests.Session``."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        *,
        sessions: SessionHolder,
        identity: Identity,
        account: AccountEvents,
        closed: threading.Event,
        max_retries: int,
        backoff: Callable[[int], float],
        max_event_size: int,
        bot_ids: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__()
        self.url = base_url + CHAT_SEND_PATH
        self.sessions = sessions
        self.identity = identity
        self._account = account
        self._closed = closed
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_event_size = max_event_size
        self._bot_ids = dict(bot_ids or {})
        self._active: Set["HttpReply"] = set()
        self._lock = threading.Lock()

    def check_model(self, model: Optional[str]) -> str:
        return resolve_http_model(model, self._bot_ids)

    def start(self, request: Request, deadline: Deadline) -> "HttpReply":
        """Post ``request`` on a new thread; its events arrive in ``reply.mailbox``."""
        reply = HttpReply(self, request, self.check_model(request.model), deadline)
        with self._lock:
            # Started under the lock, so close() never sees an unstarted thread.
            if self._closed.is_set():
                raise ClientClosedError()
            self._active.add(reply)
            reply.thread.start()
        return reply

    def forget(self, reply: "HttpReply") -> None:
        with self._lock:
            self._active.discard(reply)

    def close(self, timeout: float) -> None:
        """Fail every reply in flight with ``ClientClosedError`` and stop it."""
        with self._lock:
            replies = list(self._active)
            self._active.clear()
        per_reply = timeout / max(len(replies), 1)
        for reply in replies:
            reply.fail(ClientClosedError(), per_reply)

    def reset_after_fork(self) -> None:
        """Forget the parent's replies; their threads and sockets are not ours."""
        self._lock = threading.Lock()
        self._active = set()

    def describe(self) -> str:
        return f"http, {len(self._active)} replies"


class HttpReply(ReplyHandle):
    """One request in flight: a mailbox fed by a background thread."""

    def __init__(self, transport: HttpTransport, request: Request, bot_id: str, deadline: Deadline) -> None:
        self._transport = transport
        self._request = request
        self._bot_id = bot_id
        self._deadline = deadline
        self.mailbox: "queue.Queue[Batch]" = queue.Queue()
        self._response: Optional[requests.Response] = None
        # The connection awaiting (or reading) the response (for cancel()).
        self._conn: Optional[Any] = None
        self._cancelled = threading.Event()
        self._finished = False  # TEXT_STREAM_PUSH_FINISHED was seen
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"myshell-http-{next(_thread_ids)}", daemon=True)

    # -- ReplyHandle -----------------------------------------------------------

    def finish(self, completed: bool) -> None:
        if completed:
            self._transport.forget(self)  # the thread ends by itself
        else:
            self._stop(1.0)

    def cancel(self) -> None:
        self.mailbox.put([(CANCELLED, None)])
        self._stop(0)

    def fail(self, error: MyshellError, timeout: float = 1.0) -> None:
        """Wake the consumer with ``error``, then stop the reply."""
        self.mailbox.put([(DEAD, error)])
        self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        """Cut the connection the reply still holds; wait (bounded) for its thread.

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
            cut_if_held(conn, self)
        elif response is not None:
            shutdown_response(response)  # a connection this adapter does not track (SOCKS)
        if timeout > 0 and self.thread.ident is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    # -- the background thread -------------------------------------------------

    def waiting_on(self, conn: Any) -> None:
        """The request went out on ``conn``; its headers are awaited next."""
        hold(conn, self)
        with self._lock:
            self._conn = conn
        if self._cancelled.is_set():
            cut_if_held(conn, self)

    def _run(self) -> None:
        watch(self)
        connect = self._deadline.connect()
        try:
            response = self._post()
            self.connected_at = time.monotonic()
            with self._lock:
                self._response = response
            if self._cancelled.is_set():
                close_quietly(response)
                return
            try:
                self._check_status(response)
                self._stream(response)
            finally:
                close_quietly(response)
        except MyshellError as exc:
            self._put([(DEAD, exc)])
        except BaseException as exc:  # never die silently
            if self._cancelled.is_set():
                return
            log.debug("HTTP reply failed", exc_info=True)
            self._put([(DEAD, translate_error(exc, self._transport.url, connect))])
        finally:
            watch(None)

    def _put(self, batch: Batch) -> None:
        if not self._cancelled.is_set():
            self.mailbox.put(batch)

    def _post(self) -> requests.Response:
        transport = self._transport
        deadline = self._deadline
        body: Dict[str, Any] = {
            "botId": self._bot_id,
            "conversation_scenario": CONVERSATION_SCENARIO,
            "message": self._request.text,
            "messageType": 1,
        }
        for attempt in itertools.count():
            headers = http_headers(transport.identity)
            headers["timestamp"] = generate_header_timestamp()
            try:
                return transport.sessions.get().post(
                    transport.url,
                    json=body,
                    headers=headers,
                    stream=True,
                    # A redirect could lead an https:// URL to http://: never follow one.
                    allow_redirects=False,
                    timeout=(deadline.connect().seconds, _read_timeout(deadline)),
                )
            except (requests.ConnectTimeout, requests.ConnectionError) as exc:
                # Only a failure to connect is safe to retry: nothing was sent.
                delay = transport._backoff(attempt)
                left = deadline.total().seconds
                if not never_sent(exc) or attempt >= transport._max_retries or (left is not None and left <= delay):
                    raise
                if transport._closed.wait(delay) or self._cancelled.is_set():
                    raise ClientClosedError() from exc
                log.info("HTTP connect failed (%s); retry %d", exc, attempt + 1)
        raise AssertionError("unreachable")

    def _check_status(self, response: requests.Response) -> None:
        token = response.headers.get("refreshed-auth-token")
        if token:
            self._transport.identity.refresh(token)
        if response.status_code < 300:
            return
        raise status_error(response, self._request.req_id, secrets=(self._transport.identity.token,))

    def _stream(self, response: requests.Response) -> None:
        """Feed the mailbox until the reply ends; EOF too early is an error."""
        decoder = SSEDecoder(max_event_size=self._transport._max_event_size)
        read = _reader(response)
        self._finished = False
        while True:
            data = read(_READ_SIZE)
            events = decoder.feed(data) if data else decoder.flush()
            batch, ended = self._translate_events(events)
            if ended:
                if data:
                    self._drain(response, read, decoder)
                self._put(batch)
                return
            if batch:
                self._put(batch)
            if not data:
                break
        if self._finished:
            self._put([(END, None)])
        else:
            self._put([(DEAD, ConnectionLostError("the HTTP stream ended before the reply was complete; retry the call"))])

    def _drain(self, response: requests.Response, read: Callable[[int], bytes], decoder: SSEDecoder) -> None:
        """Read the rest of the body (bounded in size and time): trailing
        events are handled, and at its end the connection goes back to the pool.

        Reading stops after ``_DRAIN_LIMIT`` bytes or once ``FINAL_GRACE``
        has passed (each read waits at most ``FINAL_GRACE``), so a server
        trickling bytes after the reply delays it by at most twice that.
        """
        # The response's own connection: None once the body is complete and
        # urllib3 gave it back to the pool (another reply may hold it now, so
        # its socket is not ours to touch). Also set for untracked (SOCKS) pools.
        sock = getattr(getattr(response.raw, "connection", None), "sock", None)
        try:
            if sock is not None:
                sock.settimeout(FINAL_GRACE)
            until = time.monotonic() + FINAL_GRACE
            size = 0
            while size <= _DRAIN_LIMIT and time.monotonic() < until:
                data = read(_READ_SIZE)
                self._translate_events(decoder.feed(data) if data else decoder.flush())
                if not data:
                    return
                size += len(data)
            log.debug("HTTP reply body goes on after the reply; dropping its connection")
        except Exception as exc:  # the reply is complete: a broken tail only costs the connection
            log.debug("reading the end of an HTTP reply failed: %s", exc)

    def _translate_events(self, events: List[ServerSentEvent]) -> Tuple[Batch, bool]:
        """Mailbox items for ``events``, and whether the reply ended with them.

        Only the events consumed here must carry JSON; any other event (a
        keep-alive ``ping``, a comment-like ``data: hello``) is skipped. After
        the reply's last event only account events (energy) still count: they
        may come in the same block.
        """
        batch: Batch = []
        ended = False
        for event in events:
            name = event.event
            kind = name[len(SSE_PREFIX):] if name.startswith(SSE_PREFIX) else name
            if kind not in _CONSUMED or (ended and kind not in _ACCOUNT):
                log.debug("ignored SSE event %s", name)
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
                ended = True
            elif kind == "ERROR":
                batch.append(("message_error", {"message": _sse_error_message(envelope)}))
                ended = True
            else:  # USER_CONSUMED_ENERGY, CHAT_CONSUMED_ENERGY
                self._transport._account("energy_info", {"data": envelope.get("userEnergyInfo")})
        return batch, ended


# Account-level events: they may follow the reply's last event.
_ACCOUNT = frozenset(("USER_CONSUMED_ENERGY", "CHAT_CONSUMED_ENERGY"))
# The SSE events the reply is made of; every other event is skipped.
_CONSUMED = frozenset(("TEXT", "TEXT_STREAM_PUSH_FINISHED", "USER_SENT_MESSAGE_REPLIED", "ERROR")) | _ACCOUNT


def fetch_energy(sessions: SessionHolder, base_url: str, identity: Identity, deadline: Deadline) -> Tuple[int, int]:
    """``GET /user/getUserEnergyInfo``: (energy, daily energy)."""
    url = base_url + ENERGY_PATH
    connect = deadline.connect()
    idle = deadline.within("idle", deadline.timeout.idle)
    try:
        response = sessions.get().get(
            url, headers=http_headers(identity), timeout=(connect.seconds, idle.seconds), allow_redirects=False
        )
    except Exception as exc:
        raise translate_error(exc, url, connect) from exc
    with response:
        if response.status_code >= 300:
            raise status_error(response, secrets=(identity.token,))
        try:
            data = response.json()
            return int(data["energy"]), int(data["dailyEnergy"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"unexpected energy answer from {url}: {exc}") from None


def _read_timeout(deadline: Deadline) -> Optional[float]:
    """requests' read timeout: only a backstop, the consumer enforces the real waits."""
    timeout = deadline.timeout
    total = deadline.total().seconds
    waits = (timeout.first_chunk, timeout.idle)
    if any(w is None for w in waits):
        return None if total is None else total + 1.0
    longest = max(w for w in waits if w is not None)
    return (longest if total is None else min(longest, total)) + 1.0


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

