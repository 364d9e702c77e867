"""The public client: configuration, the connection pool, and the chat API."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from ._config import Timeout, TimeoutTypes, parse_proxy
from ._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_CAPTCHA_DELAY,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_IDLE_CLOSE,
    DEFAULT_USER_AGENT,
    SOURCE_FROM,
    TOKEN_ENV,
    WS_PATH,
)
from ._exceptions import ClientClosedError, MyshellError
from ._models import format_prompt, resolve_model, validate_messages
from ._pool import Pool
from ._reply import iter_reply
from ._signing import generate_signature, generate_visitor_id
from ._websocket import Connection

__all__ = ["Myshell", "Stream", "Reply", "Timings", "generate"]

log = logging.getLogger("myshell_sync")

Messages = Sequence[Mapping[str, str]]

_NOT_GIVEN: Any = object()


@dataclass
class Timings:
    """Seconds from the start of the call to each milestone (None if not reached)."""

    connect: Optional[float] = None
    first_chunk: Optional[float] = None
    total: Optional[float] = None


@dataclass
class Reply:
    """A whole reply, as returned by :meth:`Myshell.chat`."""

    text: str
    req_id: str
    message: Optional[Dict[str, Any]]
    timings: Timings


@dataclass(frozen=True)
class _Request:
    req_id: str
    bot_uid: str
    text: str
    timeout: Timeout


class _AccountState:
    """Account-level events (no reqId); shared with the reader threads.

    Kept apart from the client so reader threads never hold the client alive.
    """

    def __init__(self) -> None:
        self.energy_info: Optional[Any] = None

    def __call__(self, event: str, payload: Any) -> None:
        if event == "energy_info":
            self.energy_info = payload.get("data") if isinstance(payload, dict) else payload
        else:
            log.debug("ignored account-level event %s", event)


class Myshell:
    """A thread-safe client for MyShell bots; use it as a context manager.

    ``generate()`` returns a plain generator of text chunks. Connections are
    opened on first use, kept for later calls, and closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        token: Optional[str] = None,
        visitor_id: Optional[str] = None,
        user_agent: Optional[str] = None,
        captcha_delay: float = DEFAULT_CAPTCHA_DELAY,
        timeout: TimeoutTypes = Timeout(),
        proxy: Optional[str] = None,
        max_connections: int = 8,
        max_retries: int = 2,
        idle_close: Optional[float] = DEFAULT_IDLE_CLOSE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        self.ws_url = _ws_url(self.base_url)
        self._token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.visitor_id = visitor_id or generate_visitor_id(self.user_agent)
        self.captcha_delay = _non_negative("captcha_delay", captcha_delay)
        self.timeout = Timeout.coerce(timeout)
        self.proxy = parse_proxy(proxy)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be an int >= 1, not {max_connections!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, not {max_retries!r}")
        self.close_timeout = _non_negative("close_timeout", close_timeout)
        if idle_close is not None:
            idle_close = _non_negative("idle_close", idle_close)
        self._account = _AccountState()
        self._pool = Pool(
            functools.partial(
                _open_connection,
                self.ws_url,
                auth={"token": self._token, "visitorId": self.visitor_id},
                user_agent=self.user_agent,
                proxy=self.proxy,
                on_account_event=self._account,
            ),
            max_connections=max_connections,
            max_retries=max_retries,
            idle_close=idle_close,
        )
        self._finalizer = weakref.finalize(self, self._pool.close, self.close_timeout)

    # -- public API ----------------------------------------------------------

    def generate(
        self, model: Optional[str], messages: Messages, **options: Any
    ) -> Generator[str, None, None]:
        """Stream the bot's reply to ``messages`` as ``str`` chunks.

        Arguments are checked now; the network is used on the first ``next()``.
        Option: ``timeout`` (a number or ``Timeout``) for this call.
        """
        request = self._request(model, messages, options)
        return self._chunks(request)

    def stream(self, model: Optional[str], messages: Messages, **options: Any) -> "Stream":
        """Like :meth:`generate`, but returns a :class:`Stream` with metadata."""
        return Stream(self, self._request(model, messages, options))

    def chat(self, model: Optional[str], messages: Messages, **options: Any) -> Reply:
        """The whole reply at once, with its metadata."""
        with self.stream(model, messages, **options) as stream:
            text = "".join(stream)
        return Reply(text=text, req_id=stream.req_id, message=stream.message, timings=stream.timings)

    def connect(self, model: Optional[str] = None) -> None:
        """Open (warm) one connection now, paying connect and handshake up front."""
        bot_uid = resolve_model(model)
        conn = self._pool.acquire(bot_uid, self.timeout.connect)
        self._pool.release(conn, bot_uid)

    @property
    def energy_info(self) -> Optional[Any]:
        """The last ``energy_info`` value the server pushed, if any."""
        return self._account.energy_info

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def close(self) -> None:
        """Close every connection; idempotent. Waiting generators get
        ``ClientClosedError``."""
        self._finalizer()

    def __enter__(self) -> "Myshell":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        token = "***" if self._token else None
        state = "closed" if self.closed else f"{len(self._pool.connections())} connections"
        return f"<Myshell {self.base_url} token={token} {state}>"

    # -- internals -----------------------------------------------------------

    def _request(self, model: Optional[str], messages: Messages, options: Dict[str, Any]) -> _Request:
        timeout = options.pop("timeout", _NOT_GIVEN)
        if options:
            names = ", ".join(sorted(options))
            raise TypeError(
                f"unexpected option(s) {names}: generate() takes timeout=; "
                "client settings such as proxy go to Myshell(...)"
            )
        if self.closed:
            raise ClientClosedError("client closed: create a new Myshell client")
        bot_uid = resolve_model(model)
        validate_messages(messages)
        return _Request(
            req_id=str(uuid.uuid4()),
            bot_uid=bot_uid,
            text=format_prompt(messages),
            timeout=self.timeout if timeout is _NOT_GIVEN else Timeout.coerce(timeout),
        )

    def _chunks(self, request: _Request) -> Generator[str, None, None]:
        yield from self._run(request, Timings())

    def _run(
        self, request: _Request, timings: Timings
    ) -> Generator[str, None, Optional[Dict[str, Any]]]:
        """Acquire a connection, send the request, yield its chunks.

        Returns the ``message_replied`` payload (None if the reply ended
        after its final frame without one).
        """
        started = time.monotonic()
        timeout = request.timeout
        try:
            conn, mailbox = self._send(request, started)
            try:
                timings.connect = time.monotonic() - started
                reply = iter_reply(mailbox, request.req_id, timeout, started)
                try:
                    chunk = next(reply)
                except StopIteration as stop:
                    message = stop.value
                else:
                    timings.first_chunk = time.monotonic() - started
                    yield chunk
                    message = yield from reply
                timings.total = time.monotonic() - started
                return message
            finally:
                conn.unregister(request.req_id)
                self._pool.release(conn, request.bot_uid)
        except MyshellError as exc:
            if exc.req_id is None:
                exc.req_id = request.req_id
            raise

    def _send(self, request: _Request, started: float) -> Tuple[Connection, "queue.Queue[Any]"]:
        """Send ``text_chat`` on a pooled connection; returns it and the mailbox.

        A connection that died before the request went out (for example
        during the captcha delay) is replaced, up to ``max_retries`` times.
        """
        timeout = request.timeout
        for attempt in itertools.count():
            remaining = None if timeout.total is None else timeout.total - (time.monotonic() - started)
            conn = self._pool.acquire(request.bot_uid, _min(timeout.connect, remaining))
            try:
                mailbox = conn.register(request.req_id)
                self._wait_for_captcha_delay(conn)
                if conn.alive or attempt >= self._pool.max_retries:
                    conn.emit("text_chat", self._text_chat_payload(request))
                    return conn, mailbox
            except BaseException:
                conn.unregister(request.req_id)
                self._pool.release(conn, request.bot_uid)
                raise
            log.info("connection died before request %s was sent; using another", request.req_id)
            conn.unregister(request.req_id)
            self._pool.release(conn, request.bot_uid)
        raise AssertionError("unreachable")

    def _wait_for_captcha_delay(self, conn: Connection) -> None:
        assert conn.connected_at is not None
        wait = conn.connected_at + self.captcha_delay - time.monotonic()
        if wait > 0 and self._pool.wait_closed(wait):
            raise ClientClosedError("client closed: create a new Myshell client")

    def _text_chat_payload(self, request: _Request) -> Dict[str, Any]:
        payload: Dict[str, Any] = {
            "reqId": request.req_id,
            "botUid": request.bot_uid,
            "sourceFrom": SOURCE_FROM,
            "text": request.text,
        }
        payload.update(generate_signature(request.text))
        return payload


class Stream:
    """One streaming reply: iterate for ``str`` chunks; a context manager.

    After the end, ``message`` is the final ``message_replied`` payload,
    ``text`` the whole reply and ``timings`` when each milestone was reached.
    """

    def __init__(self, client: Myshell, request: _Request) -> None:
        self.req_id = request.req_id
        self.timings = Timings()
        self.message: Optional[Dict[str, Any]] = None
        self._parts: List[str] = []
        self._iterator = self._iterate(client, request)

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def _iterate(self, client: Myshell, request: _Request) -> Generator[str, None, None]:
        run = client._run(request, self.timings)
        while True:
            try:
                chunk = next(run)
            except StopIteration as stop:
                self.message = stop.value
                return
            self._parts.append(chunk)
            yield chunk

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        """Stop the reply now; idempotent."""
        self._iterator.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Stream req_id={self.req_id} chars={len(self.text)}>"


_CLIENT_OPTIONS = frozenset(
    (
        "base_url",
        "token",
        "visitor_id",
        "user_agent",
        "captcha_delay",
        "timeout",
        "proxy",
        "max_connections",
        "max_retries",
        "idle_close",
        "close_timeout",
    )
)


def generate(
    model: Optional[str], messages: Messages, **client_options: Any
) -> Generator[str, None, None]:
    """One call with its own client, closed when the generator ends.

    ``client_options`` are :class:`Myshell` arguments (``timeout``, ``proxy``,
    ``token``, ...). Arguments are checked now; the network is used on the
    first ``next()``.
    """
    unknown = set(client_options) - _CLIENT_OPTIONS
    if unknown:
        raise TypeError(
            f"unexpected option(s) {', '.join(sorted(unknown))}; "
            f"use any of {', '.join(sorted(_CLIENT_OPTIONS))}"
        )
    client = Myshell(**client_options)
    try:
        request = client._request(model, messages, {})
    except BaseException:
        client.close()
        raise
    return _one_shot(client, request)


def _one_shot(client: Myshell, request: _Request) -> Generator[str, None, None]:
    try:
        yield from client._run(request, Timings())
    finally:
        client.close()


class _GenerateDescriptor:
    """``Myshell.generate``: a method on instances, the one-shot
    :func:`generate` on the class (the calling style of gpt4free)."""

    def __init__(self, method: Callable[..., Generator[str, None, None]]) -> None:
        self._method = method
        functools.update_wrapper(self, method)  # type: ignore[arg-type]

    def __get__(self, obj: Optional[Myshell], objtype: Optional[type] = None) -> Callable[..., Generator[str, None, None]]:
        if obj is None:
            return generate
        return self._method.__get__(obj, objtype)


Myshell.generate = _GenerateDescriptor(Myshell.generate)  # type: ignore[method-assign,assignment]


def _open_connection(url: str, timeout: Optional[float], **options: Any) -> Connection:
    """Open one connection. A module function: the pool must not hold the
    client alive (its finaliser closes the pool)."""
    conn = Connection(url, **options)
    conn.open(timeout)
    return conn


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
    return base_url.rstrip("/")


def _ws_url(base_url: str) -> str:
    scheme, rest = base_url.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + WS_PATH


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)


def _min(*values: Optional[float]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return min(present) if present else None
