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

import json
import json.scanner
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

import requests

from .._constants import (
    CHAT_SEND_PATH,
    CLIENT_VERSION,
    CONVERSATION_SCENARIO,
    ENERGY_PATH,
    FINAL_GRACE,
    SECURITY_TOKEN_HEADER,
    SERVICE_NAME,
)
from .._deadline import Deadline
from .._exceptions import ConnectionLostError, ProtocolError
from .._models import http_models, resolve_http_model
from .._signing import generate_header_timestamp
from .._sse import ServerSentEvent, SSEDecoder
from ._http_errors import status_error, translate_error
from ._identity import AccountEvents, Identity
from ._requests_adapter import close_quietly
from ._session import SessionHolder
from ._threaded import ThreadedReply, ThreadedTransport
from .base import DEAD, END, Batch, Request

__all__ = ["HttpTransport", "fetch_energy", "http_headers", "SSE_PREFIX"]

log = logging.getLogger("myshell_sync")

SSE_PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"
_READ_SIZE = 65536
# After the reply, at most this much more of the body is read (to reuse the
# connection), for at most FINAL_GRACE seconds.
_DRAIN_LIMIT = 65536
# After the first chunk, how long the reply thread waits (at most) for the
# consumer to take it, and the sleep between two looks.
_FIRST_HAND_OVER = 0.002
_HAND_OVER_SLEEP = 0.00005


def http_headers(identity: Identity) -> dict[str, str]:
    """The headers the web app sends with every API request."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": identity.user_agent,
        "myshell-service-name": SERVICE_NAME,
        "visitor-id": identity.http_visitor_id,
        "platform": "web",
        "version": "1.0.0",
        "myshell-client-version": CLIENT_VERSION,
        "Accept-Language": "en",
    }
    if identity.token:
        headers["Authorization"] = f"Bearer {identity.token}"
    if identity.security_token:
        headers[SECURITY_TOKEN_HEADER] = identity.security_token
    headers.update(identity.headers)  # the caller's, merged last
    return headers


class HttpTransport(ThreadedTransport):
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
        bot_ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            base_url + CHAT_SEND_PATH, sessions=sessions, closed=closed, max_retries=max_retries, backoff=backoff
        )
        self.identity = identity
        self._account = account
        self._max_event_size = max_event_size
        self._bot_ids = dict(bot_ids or {})

    def check_model(self, model: str | None) -> str:
        return resolve_http_model(model, self._bot_ids)

    def model_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*http_models, *self._bot_ids]))

    def make_reply(self, request: Request, deadline: Deadline) -> HttpReply:
        return HttpReply(self, request, self.check_model(request.model), deadline)


class HttpReply(ThreadedReply):
    """One SSE reply, fed into its mailbox by its own thread."""

    _transport: HttpTransport

    def __init__(self, transport: HttpTransport, request: Request, bot_id: str, deadline: Deadline) -> None:
        super().__init__(transport, request, deadline)
        self._bot_id = bot_id
        self._finished = False  # TEXT_STREAM_PUSH_FINISHED was seen

    def exchange(self) -> None:
        body: dict[str, Any] = {
            "botId": self._bot_id,
            "conversation_scenario": CONVERSATION_SCENARIO,
            "message": self._request.text,
            "messageType": 1,
        }
        response = self.post(body, self._headers, stream=True)
        if response is None:
            return
        try:
            self._check_status(response)
            self._stream(response)
        finally:
            close_quietly(response)

    def _headers(self) -> dict[str, str]:
        headers = http_headers(self._transport.identity)
        headers["timestamp"] = generate_header_timestamp()
        return headers

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
        streaming = False
        while True:
            data = read(_READ_SIZE)
            events = decoder.feed(data) if data else decoder.flush()
            batch, ended = self._translate_events(events)
            if ended:
                if data:
                    self._drain(response, read, decoder)
                self.put(batch)
                return
            if batch:
                self.put(batch)
                if not streaming:
                    streaming = True
                    self._hand_over_first()
            if not data:
                break
        if self._finished:
            self.put([(END, None)])
        else:
            self.put(
                [(DEAD, ConnectionLostError("the HTTP stream ended before the reply was complete; retry the call"))]
            )

    def _hand_over_first(self) -> None:
        """Let the consumer take the first chunk before this thread parses
        the next (possibly large) block: it would otherwise wait for the
        interpreter's lock until this thread's time slice ends (5 ms). Waits
        at most ``_FIRST_HAND_OVER`` seconds, in short sleeps that let the
        lock go."""
        mailbox = self.mailbox
        until = time.monotonic() + _FIRST_HAND_OVER
        while not mailbox.empty() and not self.cancelled and time.monotonic() < until:
            time.sleep(_HAND_OVER_SLEEP)

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

    def _translate_events(self, events: list[ServerSentEvent]) -> tuple[Batch, bool]:
        """Mailbox items for ``events``, and whether the reply ended with them.

        Only the events consumed here must carry JSON; any other event (a
        keep-alive ``ping``, a comment-like ``data: hello``) is skipped. After
        the reply's last event only account events (energy) still count: they
        may come in the same block.
        """
        batch: Batch = []
        ended = False
        append = batch.append
        for event in events:
            name = event.event
            if name == _TEXT_NAME and not ended:
                # The usual event, first: the same checks, fewer steps.
                data = event.data
                try:
                    envelope = _scan(data, 0) if data[:1] == "{" else None
                except (ValueError, RecursionError, StopIteration):
                    envelope = None  # the general path below says what is wrong
                if envelope is not None and envelope[1] == len(data) and envelope[0].__class__ is dict:
                    content = envelope[0].get("content")
                    if content.__class__ is str:
                        append(content)  # a chunk that is not the last: the bare text
                        continue
            kind = name[len(SSE_PREFIX) :] if name.startswith(SSE_PREFIX) else name
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


_TEXT_NAME = SSE_PREFIX + "TEXT"
# A JSON value at an index, and where it ends (json.loads without its wrapping).
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed wants a scanner; C and Python take the decoder
# Account-level events: they may follow the reply's last event.
_ACCOUNT = frozenset(("USER_CONSUMED_ENERGY", "CHAT_CONSUMED_ENERGY"))
# The SSE events the reply is made of; every other event is skipped.
_CONSUMED = frozenset(("TEXT", "TEXT_STREAM_PUSH_FINISHED", "USER_SENT_MESSAGE_REPLIED", "ERROR")) | _ACCOUNT


def fetch_energy(sessions: SessionHolder, base_url: str, identity: Identity, deadline: Deadline) -> tuple[int, int]:
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


def _sse_error_message(envelope: dict[str, Any]) -> str:
    status = envelope.get("status")
    message = status.get("message") if isinstance(status, dict) else None
    if isinstance(message, str):
        return message
    reason = envelope.get("errorReason")
    return reason if isinstance(reason, str) and reason else "no message from the server"


def _reader(response: requests.Response) -> Callable[[int], bytes]:
    """A read that returns whatever has arrived (never waits to fill ``amt``;
    urllib3 >= 2.2, as setup.cfg requires)."""
    read1 = response.raw.read1
    return lambda amt: read1(amt, decode_content=True)
