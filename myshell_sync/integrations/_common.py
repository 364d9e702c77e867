"""What the adapters share: configuration from the environment, a cache of
clients, the model names of each transport, and client-side stop strings.

Built on the public ``myshell_sync`` API only; imports no third-party library.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from .. import Myshell, Stream, http_models, models, openapi_models
from .._environment import BASE_URL_ENV, CAPTCHA_DELAY_ENV, OPENAPI_URL_ENV, captcha_delay_from_env
from .._stop import StopScanner
from . import PREFIXES

__all__ = [
    "BASE_URL_ENV",
    "OPENAPI_URL_ENV",
    "CAPTCHA_DELAY_ENV",
    "SETTINGS",
    "TRANSPORTS",
    "ClientCache",
    "StopScanner",
    "base_url_from_env",
    "captcha_delay_from_env",
    "client_options",
    "model_names",
    "stop_list",
    "stopped_text",
]

log = logging.getLogger("myshell_sync")


#: The generation settings, which only the key-based API sends.
SETTINGS: tuple[str, ...] = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty")
#: The transports an adapter offers, in the order of ``PREFIXES``.
TRANSPORTS: tuple[str, ...] = tuple(PREFIXES)


def model_names(transport: str) -> tuple[str, ...]:
    """The model names ``transport`` knows (``Myshell.model_names`` without a client)."""
    table: Mapping[str, str] = {"websocket": models, "http": http_models, "openapi": openapi_models}[transport]
    return tuple(table)


def base_url_from_env(transport: str) -> str | None:
    """``$MYSHELL_OPENAPI_URL`` for the key-based API, else ``$MYSHELL_BASE_URL`` (None if unset)."""
    name = OPENAPI_URL_ENV if transport == "openapi" else BASE_URL_ENV
    return os.environ.get(name) or None


def client_options(
    transport: str,
    *,
    credential: str | None = None,
    base_url: str | None = None,
    captcha_delay: float | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``Myshell`` arguments for ``transport``: the credential becomes the API
    key on the key-based API and the account token elsewhere; a base URL or
    captcha delay not given comes from the environment (else the client's default)."""
    result: dict[str, Any] = {"transport": transport}
    if credential:
        result["api_key" if transport == "openapi" else "token"] = credential
    base_url = base_url or base_url_from_env(transport)
    if base_url:
        result["base_url"] = base_url
    if captcha_delay is None:
        captcha_delay = captcha_delay_from_env()
    if captcha_delay is not None:
        result["captcha_delay"] = captcha_delay
    result.update({name: value for name, value in options.items() if value is not None})
    return result


class ClientCache:
    """One ``Myshell`` client per distinct set of options, shared by every
    thread; ``close()`` closes them all (a later ``get`` makes new ones)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[tuple[str, Any], ...], Myshell] = {}
        self._lock = threading.Lock()

    def get(self, **options: Any) -> Myshell:
        key = tuple(sorted((name, _frozen(value)) for name, value in options.items()))
        with self._lock:
            client = self._clients.get(key)
            if client is None or client.closed:
                client = Myshell(**options)
                self._clients[key] = client
                log.debug("integrations: a new client, transport=%s", options.get("transport"))
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def __repr__(self) -> str:
        return f"<ClientCache clients={len(self)}>"


def _frozen(value: Any) -> Any:
    """``value`` made hashable (a mapping as its sorted items), for a cache key."""
    if isinstance(value, Mapping):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    return value


def stop_list(stop: str | Sequence[str] | None) -> list[str]:
    """``stop`` (a string, a list of them or None) as a list of non-empty strings."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    stops = list(stop)
    for item in stops:
        if not isinstance(item, str):
            raise TypeError(f"stop strings must be str, not {type(item).__name__}")
    return [item for item in stops if item]


def stopped_text(stream: Stream, stops: Sequence[str]) -> Generator[str, None, None]:
    """The pieces of ``stream``'s text up to the first stop string; a match
    closes the stream (cancelling the rest of the reply upstream)."""
    scanner = StopScanner(stops)
    try:
        for chunk in stream:
            passed = scanner.feed(chunk)
            if passed:
                yield passed
            if scanner.stopped:
                break
        rest = scanner.flush()
        if rest:
            yield rest
    finally:
        stream.close()
