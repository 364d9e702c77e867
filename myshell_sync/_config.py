"""Configuration value objects: timeouts and proxies."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from ._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FIRST_CHUNK_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
)

__all__ = ["Timeout", "TimeoutTypes", "ProxyConfig", "parse_proxy"]


@dataclass(frozen=True)
class Timeout:
    """How long each wait may last, in seconds; ``None`` means no limit.

    - ``connect``: TCP + WebSocket upgrade + Socket.IO handshake.
    - ``first_chunk``: from sending the request to its first event.
    - ``idle``: silence between two events of one reply.
    - ``total``: the whole reply, connect included.
    """

    connect: Optional[float] = DEFAULT_CONNECT_TIMEOUT
    first_chunk: Optional[float] = DEFAULT_FIRST_CHUNK_TIMEOUT
    idle: Optional[float] = DEFAULT_IDLE_TIMEOUT
    total: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("connect", "first_chunk", "idle", "total"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Timeout.{name} must be a number or None, not {value!r}")
            if not value > 0:
                raise ValueError(f"Timeout.{name} must be > 0 (or None for no limit), not {value!r}")

    @classmethod
    def coerce(cls, value: "TimeoutTypes") -> "Timeout":
        """A ``Timeout`` from a ``Timeout``, or a number used for the three waits."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(None, None, None, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"timeout must be a number or a Timeout, not {value!r}")
        return cls(connect=value, first_chunk=value, idle=value)


TimeoutTypes = Union[Timeout, float, int, None]


@dataclass(frozen=True)
class ProxyConfig:
    """An HTTP CONNECT proxy. ``repr`` hides the password."""

    scheme: str
    host: str
    port: int
    auth: Optional[Tuple[str, str]] = None

    def __repr__(self) -> str:
        user = f"{self.auth[0]}:***@" if self.auth else ""
        return f"ProxyConfig('{self.scheme}://{user}{self.host}:{self.port}')"


def parse_proxy(url: Optional[str]) -> Optional[ProxyConfig]:
    """Parse ``http://[user:pass@]host:port``; raise ValueError otherwise."""
    if url is None:
        return None
    if not isinstance(url, str):
        raise TypeError(f"proxy must be a URL string, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(
            f"unsupported proxy scheme {parts.scheme!r}: use http://[user:pass@]host:port"
        )
    try:
        port = parts.port or 8080
    except ValueError:
        raise ValueError("proxy URL has a bad port: use http://[user:pass@]host:port") from None
    if not parts.hostname:
        raise ValueError("proxy URL has no host: use http://[user:pass@]host:port")
    auth = None
    if parts.username is not None:
        auth = (
            urllib.parse.unquote(parts.username),
            urllib.parse.unquote(parts.password or ""),
        )
    return ProxyConfig(parts.scheme, parts.hostname, port, auth)
