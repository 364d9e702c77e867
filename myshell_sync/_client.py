"""The public client: configuration, transports, the pool, and the chat API."""

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
    TYPE_CHECKING,
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
    Union,
)

from ._config import (
    ProxyConfig,
    Timeout,
    TimeoutTypes,
    check_verify,
    environment_proxy,
    parse_proxy,
    tls_options,
)
from ._constants import (
    CLIENT_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_CAPTCHA_DELAY,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_IDLE_CLOSE,
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_USER_AGENT,
    ENERGY_PATH,
    SERVICE_NAME,
    SOURCE_FROM,
    TOKEN_ENV,
    WS_PATH,
)
from ._exceptions import (
    AuthenticationError,
    ClientClosedError,
    MyshellConnectionError,
    MyshellError,
    ProtocolError,
    UnsupportedModelError,
)
from ._models import (
    format_prompt,
    resolve_http_model,
    resolve_model,
    validate_messages,
)
from ._pool import Pool, backoff_delay
from ._reply import Batch, iter_reply
from ._signing import generate_signature, generate_visitor_id
from ._websocket import Connection

if TYPE_CHECKING:  # the HTTP stack (requests) is imported on first use only
    from ._http import HttpTransport

__all__ = ["Myshell", "Stream", "Reply", "Timings", "Energy", "generate"]

log = logging.getLogger("myshell_sync")

Messages = Sequence[Mapping[str, str]]

TRANSPORTS = ("websocket", "http", "auto")
# WebSocket upgrade statuses after which transport="auto" switches to HTTP.
_FALLBACK_STATUSES = (403, 404, 426)
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
class Energy:
    """The account's energy, from :meth:`Myshell.energy`."""

    energy: int
    daily_energy: int


@dataclass(frozen=True)
class _Request:
    req_id: str
    model: Optional[str]
    bot_uid: Optional[str]  # for the WebSocket
    bot_id: Optional[str]  # for HTTP
    text: str
    timeout: Timeout


class _AccountState:
    """Account-level events (no reqId); shared with the transport threads.

    Kept apart from the client so those threads never hold the client alive.
    """

    def __init__(self) -> None:
        self.energy_info: Optional[Any] = None

    def __call__(self, event: str, payload: Any) -> None:
        if event == "energy_info":
            self.energy_info = payload.get("data") if isinstance(payload, dict) else payload
        else:
            log.debug("ignored account-level event %s", event)


class _Identity:
    """Who the client is on the wire. A ``refreshed-auth-token`` replaces the token."""

    def __init__(self, token: Optional[str], visitor_id: str, user_agent: str) -> None:
        self.token = token
        self.visitor_id = visitor_id
        self.user_agent = user_agent

    def ws_auth(self) -> Dict[str, Any]:
        return {"token": self.token, "visitorId": self.visitor_id}

    def http_headers(self) -> Dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
            "myshell-service-name": SERVICE_NAME,
            "visitor-id": self.visitor_id,
            "platform": "web",
            "version": "1.0.0",
            "myshell-client-version": CLIENT_VERSION,
            "Accept-Language": "en",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def refresh(self, token: str) -> None:
        log.info("the server refreshed the account token")
        self.token = token


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
        transport: str = "websocket",
        http_bot_ids: Optional[Mapping[str, str]] = None,
        verify: Union[bool, str] = True,
        trust_env: bool = True,
        max_connections: int = 8,
        max_retries: int = 2,
        idle_close: Optional[float] = DEFAULT_IDLE_CLOSE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        self.ws_url = _ws_url(self.base_url)
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.transport = transport
        self.http_bot_ids = _check_bot_ids(http_bot_ids)
        user_agent = user_agent or DEFAULT_USER_AGENT
        self._identity = _Identity(
            token if token is not None else (os.environ.get(TOKEN_ENV) or None),
            visitor_id or generate_visitor_id(user_agent),
            user_agent,
        )
        self.captcha_delay = _non_negative("captcha_delay", captcha_delay)
        self.timeout = Timeout.coerce(timeout)
        self.verify = check_verify(verify)
        self.trust_env = bool(trust_env)
        self.max_retries = max_retries
        self.max_connections = max_connections
        self.max_event_size = max_event_size
        self.proxy = parse_proxy(proxy)
        if self.proxy is None and self.trust_env:
            self.proxy = environment_proxy(self.base_url)
        _check_int("max_connections", max_connections, 1)
        _check_int("max_retries", max_retries, 0)
        _check_int("max_event_size", max_event_size, 1)
        self.close_timeout = _non_negative("close_timeout", close_timeout)
        if idle_close is not None:
            idle_close = _non_negative("idle_close", idle_close)
        self._account = _AccountState()
        self._fell_back = False
        self._pool = Pool(
            functools.partial(
                _open_connection,
                self.ws_url,
                auth=self._identity.ws_auth,
                user_agent=user_agent,
                options=self._websocket_options(),
                on_account_event=self._account,
                max_frame_size=max_event_size,
            ),
            max_connections=max_connections,
            max_retries=max_retries,
            idle_close=idle_close,
        )
        self._http = _HttpHolder(
            functools.partial(
                _make_http_transport,
                self.base_url,
                verify=self.verify,
                proxy=self.proxy,
                max_connections=max_connections,
                identity=self._identity,
                account=self._account,
                closed=self._pool.closed_event,
                max_retries=max_retries,
                max_event_size=max_event_size,
            )
        )
        self._finalizer = weakref.finalize(
            self, _close_resources, self._pool, self._http, self.close_timeout
        )

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
        """Open (warm) one WebSocket connection now, paying connect and
        handshake up front. Does nothing on the HTTP transport."""
        if self._uses_http():
            return
        bot_uid = resolve_model(model)
        conn = self._pool.acquire(bot_uid, self.timeout.connect)
        self._pool.release(conn, bot_uid)

    def energy(self) -> Energy:
        """The account's energy (``GET /user/getUserEnergyInfo``); needs a token."""
        if not self._identity.token:
            raise AuthenticationError("energy() needs a logged-in account: pass token= or set MYSHELL_TOKEN")
        if self.closed:
            raise ClientClosedError()
        from ._http import status_error, translate_error

        session = self._http.get().session
        url = self.base_url + ENERGY_PATH
        try:
            response = session.get(
                url,
                headers=self._identity.http_headers(),
                timeout=(self.timeout.connect, self.timeout.idle),
                allow_redirects=False,
            )
        except Exception as exc:
            raise translate_error(exc, url, self.timeout.connect) from exc
        with response:
            if response.status_code >= 300:
                raise status_error(response)
            try:
                data = response.json()
                return Energy(energy=int(data["energy"]), daily_energy=int(data["dailyEnergy"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ProtocolError(f"unexpected energy answer from {url}: {exc}") from None

    @property
    def token(self) -> Optional[str]:
        """The account token in use (it may have been refreshed by the server)."""
        return self._identity.token

    @property
    def visitor_id(self) -> str:
        return self._identity.visitor_id

    @property
    def user_agent(self) -> str:
        return self._identity.user_agent

    @property
    def energy_info(self) -> Optional[Any]:
        """The last ``energy_info`` value the server pushed, if any."""
        return self._account.energy_info

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def close(self) -> None:
        """Close every connection and HTTP stream; idempotent. Waiting
        generators get ``ClientClosedError``."""
        self._finalizer()

    def __enter__(self) -> "Myshell":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        token = "***" if self._identity.token else None
        state = "closed" if self.closed else f"{len(self._pool.connections())} connections"
        return f"<Myshell {self.base_url} transport={self.transport} token={token} {state}>"

    # -- configuration ---------------------------------------------------------

    def _websocket_options(self) -> Dict[str, Any]:
        options: Dict[str, Any] = {}
        if self.proxy is not None:
            options.update(self.proxy.websocket_options())
        else:
            # Environment proxies were resolved above (or trust_env is off), so
            # websocket-client must not read them again. It honours its
            # no-proxy list only next to a proxy host: this one is never used.
            options.update(http_proxy_host="127.0.0.1", http_proxy_port=9, http_no_proxy=["*"])
        sslopt = tls_options(self.verify)
        if sslopt:
            options["sslopt"] = sslopt
        return options

    # -- requests ----------------------------------------------------------------

    def _uses_http(self) -> bool:
        return self.transport == "http" or (self.transport == "auto" and self._fell_back)

    def _request(self, model: Optional[str], messages: Messages, options: Dict[str, Any]) -> _Request:
        timeout = options.pop("timeout", _NOT_GIVEN)
        if options:
            names = ", ".join(sorted(options))
            raise TypeError(
                f"unexpected option(s) {names}: generate() takes timeout=; "
                "client settings such as proxy go to Myshell(...)"
            )
        if self.closed:
            raise ClientClosedError()
        bot_uid, bot_id = self._resolve(model)
        validate_messages(messages)
        return _Request(
            req_id=str(uuid.uuid4()),
            model=model,
            bot_uid=bot_uid,
            bot_id=bot_id,
            text=format_prompt(messages),
            timeout=self.timeout if timeout is _NOT_GIVEN else Timeout.coerce(timeout),
        )

    def _resolve(self, model: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
        """(bot uid, bot id) for the transports this client may use."""
        http_id = functools.partial(resolve_http_model, extra=self.http_bot_ids)
        if self._uses_http():
            return None, http_id(model)
        if self.transport == "auto":
            try:
                return resolve_model(model), _try(http_id, model)
            except UnsupportedModelError:
                return None, http_id(model)  # a numeric id: HTTP only
        return resolve_model(model), None

    def _chunks(self, request: _Request) -> Generator[str, None, None]:
        yield from self._run(request, Timings())

    def _run(
        self, request: _Request, timings: Timings
    ) -> Generator[str, None, Optional[Dict[str, Any]]]:
        """Send the request on the client's transport and yield its chunks.

        Returns the final message (None if the reply ended without one).
        """
        started = time.monotonic()
        try:
            if request.bot_uid is None or self._uses_http():
                return (yield from self._run_http(request, timings, started))
            try:
                conn, mailbox = self._send(request, started)
            except (MyshellConnectionError, AuthenticationError) as exc:
                if not self._fall_back(exc):
                    raise
                return (yield from self._run_http(request, timings, started))
            try:
                timings.connect = time.monotonic() - started
                reply = iter_reply(mailbox, request.req_id, request.timeout, started)
                return (yield from _timed(reply, timings, started))
            finally:
                conn.unregister(request.req_id)
                self._pool.release(conn, request.bot_uid)
        except MyshellError as exc:
            if exc.req_id is None:
                exc.req_id = request.req_id
            raise

    def _fall_back(self, exc: MyshellError) -> bool:
        """With transport="auto": switch to HTTP for good if the WebSocket was refused."""
        if self.transport != "auto":
            return False
        refused = isinstance(exc, AuthenticationError) or (
            isinstance(exc, MyshellConnectionError) and exc.status_code in _FALLBACK_STATUSES
        )
        if not refused:
            return False
        if not self._fell_back:
            self._fell_back = True
            log.warning("the WebSocket was refused (%s); this client uses HTTP from now on", exc)
        return True

    def _run_http(
        self, request: _Request, timings: Timings, started: float
    ) -> Generator[str, None, Optional[Dict[str, Any]]]:
        bot_id = request.bot_id
        if bot_id is None:  # auto fell back for a model with no known HTTP id
            bot_id = resolve_http_model(request.model, self.http_bot_ids)
        timeout = request.timeout
        remaining = _remaining(timeout, started)
        from ._http import HttpRequest

        reply = self._http.get().start(
            HttpRequest(
                req_id=request.req_id,
                bot_id=bot_id,
                text=request.text,
                connect_timeout=_min(timeout.connect, remaining),
                read_timeout=_read_timeout(timeout),
            )
        )
        try:
            chunks = iter_reply(reply.mailbox, request.req_id, timeout, started)
            message = yield from _timed(chunks, timings, started)
            return message
        finally:
            if reply.connected_at is not None:
                timings.connect = reply.connected_at - started
            reply.cancel()

    def _send(self, request: _Request, started: float) -> Tuple[Connection, "queue.Queue[Batch]"]:
        """Send ``text_chat`` on a pooled connection; returns it and the mailbox.

        A connection that died before the request went out (for example
        during the captcha delay) is replaced, up to ``max_retries`` times.
        """
        assert request.bot_uid is not None
        timeout = request.timeout
        for attempt in itertools.count():
            remaining = _remaining(timeout, started)
            conn = self._pool.acquire(request.bot_uid, _min(timeout.connect, remaining))
            try:
                mailbox = conn.register(request.req_id)
                self._wait_for_captcha_delay(conn)
                if conn.alive or attempt >= self._pool.max_retries:
                    # The send counts against the wait for the first event.
                    left = None if timeout.total is None else timeout.total - (time.monotonic() - started)
                    conn.emit(
                        "text_chat", self._text_chat_payload(request), timeout=_min(timeout.first_chunk, left)
                    )
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
            raise ClientClosedError()

    def _text_chat_payload(self, request: _Request) -> Dict[str, Any]:
        payload: Dict[str, Any] = {
            "reqId": request.req_id,
            "botUid": request.bot_uid,
            "sourceFrom": SOURCE_FROM,
            "text": request.text,
        }
        payload.update(generate_signature(request.text))
        return payload


def _timed(
    reply: Generator[str, None, Optional[Dict[str, Any]]], timings: Timings, started: float
) -> Generator[str, None, Optional[Dict[str, Any]]]:
    """Pass ``reply`` through, noting when the first chunk and the end came."""
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


def _make_http_transport(
    base_url: str,
    *,
    verify: Union[bool, str],
    proxy: Optional[ProxyConfig],
    max_connections: int,
    identity: _Identity,
    account: _AccountState,
    closed: threading.Event,
    max_retries: int,
    max_event_size: int,
) -> "HttpTransport":
    """The HTTP transport and its ``requests.Session`` (made on first use).

    A module function, so the holder never keeps the client alive.
    """
    import requests
    from ._http import CancellableAdapter, HttpTransport

    session = requests.Session()
    adapter = CancellableAdapter(pool_connections=1, pool_maxsize=max_connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    session.trust_env = False  # environment proxies were resolved by the client
    if proxy is not None:
        session.proxies = {"http": proxy.url, "https": proxy.url}
    return HttpTransport(
        base_url,
        session,
        headers=identity.http_headers,
        on_account_event=account,
        on_token=identity.refresh,
        closed=closed,
        max_retries=max_retries,
        backoff=backoff_delay,
        max_event_size=max_event_size,
    )


class _HttpHolder:
    """Makes the HTTP transport on first use; closes it if it was made."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._transport: Optional["HttpTransport"] = None
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> "HttpTransport":
        with self._lock:
            if self._closed:
                raise ClientClosedError()
            if self._transport is None:
                self._transport = self._factory()
            return self._transport

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._factory = None
            transport = self._transport
        if transport is not None:
            transport.close()
            transport.session.close()


def _close_resources(pool: Pool, http: _HttpHolder, timeout: float) -> None:
    """Close everything a client owns (also run by its finaliser)."""
    http.close()
    pool.close(timeout)


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
        "transport",
        "http_bot_ids",
        "verify",
        "trust_env",
        "max_event_size",
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


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, not {value!r}")


def _check_bot_ids(ids: Optional[Mapping[str, str]]) -> Dict[str, str]:
    checked: Dict[str, str] = {}
    for name, bot_id in (ids or {}).items():
        if not isinstance(bot_id, str) or not bot_id.isdigit():
            raise ValueError(f"http_bot_ids[{name!r}] must be a numeric id string, not {bot_id!r}")
        checked[name] = bot_id
    return checked


def _try(resolve: Any, model: Optional[str]) -> Optional[str]:
    try:
        return resolve(model)
    except UnsupportedModelError:
        return None


def _read_timeout(timeout: Timeout) -> Optional[float]:
    """requests' read timeout: only a backstop, the consumer enforces the real waits."""
    waits = (timeout.first_chunk, timeout.idle, timeout.total)
    if any(w is None for w in waits[:2]):
        return timeout.total + 1.0 if timeout.total is not None else None
    return max(w for w in waits if w is not None) + 1.0


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)


def _remaining(timeout: Timeout, started: float) -> Optional[float]:
    """What is left of ``Timeout.total`` for a call that began at ``started``."""
    return None if timeout.total is None else timeout.total - (time.monotonic() - started)


def _min(*values: Optional[float]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return min(present) if present else None
