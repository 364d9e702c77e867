"""The public client: configuration, validation and the chat API.

A call reads top-down: ``Myshell`` validates it and builds a ``Request`` and
a ``Deadline``; its transport (``transports/``) sends the request and fills
the reply's mailbox; ``_stream`` turns the mailbox into chunks.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Literal

from ._config import ProxyConfig, Timeout, TimeoutTypes, VerifyTypes, check_verify, environment_proxy, parse_proxy
from ._constants import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_CAPTCHA_DELAY,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_IDLE_CLOSE,
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_OPENAPI_URL,
    DEFAULT_USER_AGENT,
    TOKEN_ENV,
)
from ._conversation import Conversation
from ._deadline import Deadline
from ._exceptions import AuthenticationError, ClientClosedError
from ._models import SETTINGS, check_settings, check_text, format_valid_prompt, validate_messages
from ._signing import generate_visitor_id
from ._stream import Reply, Stream, Timings, run
from ._wording import Wording
from .transports._identity import AccountEvents, Identity
from .transports._pool import backoff_delay
from .transports._session import SessionHolder
from .transports.base import Request, Transport

__all__ = ["Myshell", "Stream", "Reply", "Timings", "Energy", "generate"]

log = logging.getLogger("myshell_sync")

Messages = Sequence[Mapping[str, str]]
TransportName = Literal["websocket", "http", "auto", "openapi"]
TRANSPORTS = ("websocket", "http", "auto", "openapi")


class _NotGiven:
    """The default of a per-call option: "use the client's setting"."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


@dataclass(frozen=True)
class Energy:
    """The account's energy, from :meth:`Myshell.energy`."""

    energy: int
    daily_energy: int


class Myshell:
    """A thread-safe client for MyShell bots; use it as a context manager.

    ``generate()`` returns a plain generator of text chunks. Connections are
    opened on first use, kept for later calls, and closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        api_key: str | None = None,
        visitor_id: str | None = None,
        user_agent: str | None = None,
        captcha_delay: float = DEFAULT_CAPTCHA_DELAY,
        timeout: TimeoutTypes = Timeout(),
        proxy: str | None = None,
        transport: TransportName | None = None,
        http_bot_ids: Mapping[str, str] | None = None,
        verify: VerifyTypes = True,
        trust_env: bool = True,
        max_connections: int = 8,
        max_retries: int = 2,
        idle_close: float | None = DEFAULT_IDLE_CLOSE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        security_token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        if transport is None:
            transport = "openapi" if api_key else "websocket"
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.transport = transport
        if base_url is None:
            base_url = DEFAULT_OPENAPI_URL if transport == "openapi" else DEFAULT_BASE_URL
        self.base_url = _check_base_url(base_url)
        self.http_bot_ids = _check_bot_ids(http_bot_ids)
        user_agent = user_agent or DEFAULT_USER_AGENT
        self._identity = Identity(
            token if token is not None else (os.environ.get(TOKEN_ENV) or None),
            visitor_id or generate_visitor_id(user_agent),
            user_agent,
            api_key=api_key,
            http_visitor_id=visitor_id,
            security_token=security_token,
            headers=_check_headers(headers),
        )
        self.captcha_delay = _non_negative("captcha_delay", captcha_delay)
        self.timeout = Timeout.coerce(timeout)
        self.verify = check_verify(verify)
        self.trust_env = bool(trust_env)
        _check_int("max_connections", max_connections, 1)
        _check_int("max_retries", max_retries, 0)
        _check_int("max_event_size", max_event_size, 1)
        self.max_retries = max_retries
        self.max_connections = max_connections
        self.max_event_size = max_event_size
        self.proxy: ProxyConfig | None = parse_proxy(proxy)
        if self.proxy is None and self.trust_env:
            self.proxy = environment_proxy(self.base_url)
        self.close_timeout = _non_negative("close_timeout", close_timeout)
        self.idle_close = None if idle_close is None else _non_negative("idle_close", idle_close)
        self._account = AccountEvents()
        self._closed = threading.Event()
        self._sessions = SessionHolder(verify=self.verify, proxy=self.proxy, max_connections=max_connections)
        self._transport = self._make_transport(transport)
        self._finalizer = weakref.finalize(
            self, _close_resources, self._closed, self._transport, self._sessions, self.close_timeout
        )

    # -- transports ------------------------------------------------------------

    def _make_transport(self, name: str) -> Transport:
        if name == "websocket":
            return self._websocket_transport()
        if name == "http":
            return self._http_transport()
        if name == "openapi":
            return self._openapi_transport()
        from .transports.auto import AutoTransport

        return AutoTransport(self._websocket_transport(), self._http_transport)

    def _websocket_transport(self) -> Transport:
        from .transports.websocket import WebSocketTransport

        return WebSocketTransport(
            self.base_url,
            identity=self._identity,
            account=self._account,
            closed=self._closed,
            proxy=self.proxy,
            verify=self.verify,
            captcha_delay=self.captcha_delay,
            max_connections=self.max_connections,
            max_retries=self.max_retries,
            idle_close=self.idle_close,
            max_event_size=self.max_event_size,
        )

    def _http_transport(self) -> Transport:
        from .transports.http import HttpTransport

        return HttpTransport(
            self.base_url,
            sessions=self._sessions,
            identity=self._identity,
            account=self._account,
            closed=self._closed,
            max_retries=self.max_retries,
            backoff=backoff_delay,
            max_event_size=self.max_event_size,
            bot_ids=self.http_bot_ids,
        )

    def _openapi_transport(self) -> Transport:
        from .transports.openapi import OpenApiTransport

        identity = self._identity
        return OpenApiTransport(
            self.base_url,
            api_key=lambda: identity.api_key,
            headers=lambda: dict(identity.headers),
            sessions=self._sessions,
            closed=self._closed,
            max_retries=self.max_retries,
            backoff=backoff_delay,
        )

    # -- public API ----------------------------------------------------------

    def generate(
        self,
        model: str | None,
        messages: Messages,
        *,
        timeout: TimeoutTypes | _NotGiven = NOT_GIVEN,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
    ) -> Generator[str, None, None]:
        """Stream the bot's reply to ``messages`` as ``str`` chunks.

        Arguments are checked now; the network is used on the first ``next()``.
        ``timeout`` (a number or ``Timeout``) replaces the client's for this call.
        The generation settings (``temperature``, ``top_p``, ``max_tokens``,
        ``presence_penalty``, ``frequency_penalty``) are sent by
        ``transport="openapi"`` only; elsewhere they raise ``ValueError``.
        """
        request, timeout_ = self._request(model, messages, timeout, _settings(locals()))
        return _chunks(self._transport, request, timeout_)

    def stream(
        self,
        model: str | None,
        messages: Messages,
        *,
        timeout: TimeoutTypes | _NotGiven = NOT_GIVEN,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
    ) -> Stream:
        """Like :meth:`generate`, but returns a :class:`Stream` with metadata."""
        request, timeout_ = self._request(model, messages, timeout, _settings(locals()))
        return Stream(self._transport, request, Deadline(timeout_))

    def chat(
        self,
        model: str | None,
        messages: Messages,
        *,
        timeout: TimeoutTypes | _NotGiven = NOT_GIVEN,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
    ) -> Reply:
        """The whole reply at once, with its metadata."""
        with self.stream(model, messages, timeout=timeout, **_settings(locals())) as stream:
            text = "".join(stream)
        return Reply(text=text, req_id=stream.req_id, message=stream.message, timings=stream.timings)

    def conversation(self, model: str | None = None, *, system: str | None = None) -> Conversation:
        """A :class:`Conversation` with ``model`` that keeps its history."""
        return Conversation(self, model, system=system)

    def connect(self, model: str | None = None) -> None:
        """Open (warm) one WebSocket connection now, paying connect and
        handshake up front. Does nothing on the HTTP transport."""
        self._check_open()
        self._transport.check_model(model)
        self._transport.warm(model, Deadline(self.timeout))

    def energy(self) -> Energy:
        """The account's energy (``GET /user/getUserEnergyInfo``); needs a token."""
        if not self._identity.token:
            raise AuthenticationError(
                Wording("{s.energy_call} needs a logged-in account: pass {s.token} or set MYSHELL_TOKEN")
            )
        self._check_open()
        from .transports.http import fetch_energy

        energy, daily = fetch_energy(self._sessions, self.base_url, self._identity, Deadline(self.timeout))
        return Energy(energy=energy, daily_energy=daily)

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint derived from ``base_url``."""
        from .transports.websocket import ws_url

        return ws_url(self.base_url)

    @property
    def model_names(self) -> tuple[str, ...]:
        """The model names this client's transport knows (it also takes bot ids)."""
        return self._transport.model_names()

    @property
    def supports_settings(self) -> bool:
        """Whether this client's transport sends the generation settings
        (``temperature``, ...): ``transport="openapi"`` only."""
        return self._transport.supports_settings

    @property
    def token(self) -> str | None:
        """The account token in use (it may have been refreshed by the server)."""
        return self._identity.token

    @property
    def visitor_id(self) -> str:
        return self._identity.visitor_id

    @property
    def user_agent(self) -> str:
        return self._identity.user_agent

    @property
    def energy_info(self) -> Any | None:
        """The last ``energy_info`` value the server pushed, if any."""
        return self._account.energy_info

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Close every connection and HTTP stream; idempotent. Waiting
        generators get ``ClientClosedError``."""
        self._finalizer()

    def __enter__(self) -> Myshell:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        token = "***" if self._identity.token else None
        state = "closed" if self.closed else self._transport.describe()
        return f"<Myshell {self.base_url} transport={self.transport} token={token} {state}>"

    # -- requests ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ClientClosedError()

    def _request(
        self, model: str | None, messages: Messages, timeout: Any, settings: Mapping[str, Any] | None = None
    ) -> tuple[Request, Timeout]:
        """Validate a call: (its request, its timeout). Nothing is sent."""
        self._check_open()
        validate_messages(messages)
        check_text(messages)
        given = check_settings(settings) if settings else {}
        if given and not self._transport.supports_settings:
            raise ValueError(
                f"{', '.join(sorted(given))}: transport={self.transport!r} has no generation settings; "
                'only transport="openapi" (the key-based API) sends them'
            )
        self._transport.check_model(model)
        request = Request(
            req_id=new_request_id(),
            model=model,
            messages=[dict(m) for m in messages],
            text=format_valid_prompt(messages),
            settings=given,
        )
        return request, self.timeout if timeout is NOT_GIVEN else Timeout.coerce(timeout)


def _settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The generation settings given among a call's arguments (its ``locals()``)."""
    return {name: arguments[name] for name in SETTINGS if arguments[name] is not None}


def new_request_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` gives."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"headers must map str to str, not {name!r}: {type(value).__name__}")
        checked[name] = value
    return checked


def _chunks(transport: Transport, request: Request, timeout: Timeout) -> Generator[str, None, None]:
    """The plain generator ``generate()`` returns; its deadline starts on first use."""
    yield from run(transport, request, Deadline(timeout), Timings())


def _close_resources(closed: threading.Event, transport: Transport, sessions: SessionHolder, timeout: float) -> None:
    """Close everything a client owns, each part even if another fails
    (also run by the client's finaliser)."""
    closed.set()
    steps: list[Callable[[], None]] = [functools.partial(transport.close, timeout), sessions.close]
    for step in steps:
        try:
            step()
        except Exception:
            log.exception("closing the client: %s failed", getattr(step, "func", step))


_CLIENT_OPTIONS = frozenset(
    (
        "base_url",
        "api_key",
        "security_token",
        "headers",
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


def generate(model: str | None, messages: Messages, **client_options: Any) -> Generator[str, None, None]:
    """One call with its own client, closed when the generator ends.

    ``client_options`` are :class:`Myshell` arguments (``timeout``, ``proxy``,
    ``token``, ...). Arguments are checked now; the network is used on the
    first ``next()``.
    """
    unknown = set(client_options) - _CLIENT_OPTIONS
    if unknown:
        raise TypeError(
            f"unexpected option(s) {', '.join(sorted(unknown))}; use any of {', '.join(sorted(_CLIENT_OPTIONS))}"
        )
    # Its one connection never idles (the client closes after the call): no janitor.
    client = Myshell(**{"idle_close": None, **client_options})
    try:
        request, timeout = client._request(model, messages, NOT_GIVEN)
    except BaseException:
        client.close()
        raise
    return _one_shot(client, request, timeout)


def _one_shot(client: Myshell, request: Request, timeout: Timeout) -> Generator[str, None, None]:
    try:
        yield from _chunks(client._transport, request, timeout)
    finally:
        client.close()


class _GenerateDescriptor:
    """``Myshell.generate``: a method on instances, the one-shot
    :func:`generate` on the class (the calling style of gpt4free)."""

    def __init__(self, method: Callable[..., Generator[str, None, None]]) -> None:
        self._method = method
        functools.update_wrapper(self, method)  # type: ignore[arg-type]

    def __get__(self, obj: Myshell | None, objtype: type | None = None) -> Callable[..., Generator[str, None, None]]:
        if obj is None:
            return generate
        bound: Callable[..., Generator[str, None, None]] = self._method.__get__(obj, objtype)
        return bound


Myshell.generate = _GenerateDescriptor(Myshell.generate)  # type: ignore[method-assign,assignment]


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
    return base_url.rstrip("/")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, not {value!r}")


def _check_bot_ids(ids: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, bot_id in (ids or {}).items():
        if not isinstance(bot_id, str) or not bot_id.isdigit():
            raise ValueError(f"http_bot_ids[{name!r}] must be a numeric id string, not {bot_id!r}")
        checked[name] = bot_id
    return checked


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)
