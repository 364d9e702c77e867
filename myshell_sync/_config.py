"""Configuration value objects: timeouts, proxies and TLS verification."""

from __future__ import annotations

import enum
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any, Optional, Union

from ._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FIRST_CHUNK_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
)

__all__ = [
    "Timeout",
    "TimeoutTypes",
    "ProxyConfig",
    "parse_proxy",
    "environment_proxy",
    "VerifyTypes",
    "check_verify",
    "tls_options",
]


class _Unset(enum.Enum):
    """The type of ``_UNSET``: a keyword the caller did not pass."""

    UNSET = "UNSET"


_UNSET = _Unset.UNSET
_Seconds = Optional[float]  # an int is fine too


@dataclass(frozen=True, init=False)
class Timeout:
    """How long each wait may last, in seconds; ``None`` means no limit.

    - ``connect``: TCP + WebSocket upgrade + Socket.IO handshake.
    - ``first_chunk``: from sending the request to its first event.
    - ``idle``: silence between two events of one reply.
    - ``total``: the whole reply, connect included.

    ``Timeout(5)`` sets ``connect``, ``first_chunk`` and ``idle`` to 5 (not
    ``total``: it stays None, as with ``timeout=5``); ``Timeout(None)`` lifts
    those three limits. Keyword arguments override the positional value.
    ``Timeout()`` gives the defaults (``repr(Timeout())`` shows them).
    """

    connect: float | None
    first_chunk: float | None
    idle: float | None
    total: float | None

    def __init__(
        self,
        default: _Seconds | _Unset = _UNSET,
        *,
        connect: _Seconds | _Unset = _UNSET,
        first_chunk: _Seconds | _Unset = _UNSET,
        idle: _Seconds | _Unset = _UNSET,
        total: _Seconds = None,
    ) -> None:
        if default is _UNSET:
            fallbacks: tuple[_Seconds, ...] = (
                DEFAULT_CONNECT_TIMEOUT,
                DEFAULT_FIRST_CHUNK_TIMEOUT,
                DEFAULT_IDLE_TIMEOUT,
            )
        else:
            _check_seconds("Timeout(default)", default)
            fallbacks = (default, default, default)
        given = {"connect": connect, "first_chunk": first_chunk, "idle": idle}
        for (name, value), fallback in zip(given.items(), fallbacks):
            if value is _UNSET:
                value = fallback
            else:
                _check_seconds(f"Timeout {name}=", value)
            object.__setattr__(self, name, value)
        _check_seconds("Timeout total=", total)
        object.__setattr__(self, "total", total)

    @classmethod
    def coerce(cls, value: TimeoutTypes) -> Timeout:
        """A ``Timeout`` from a ``Timeout``, or ``Timeout(value)`` from a
        number of seconds or None."""
        if isinstance(value, Timeout):
            return value
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TypeError(f"timeout must be a number of seconds, None (no limit) or a Timeout; got {value!r}")
        _check_seconds("timeout", value)
        return cls(value)


def _check_seconds(what: str, value: object) -> None:
    """Raise TypeError or ValueError, saying what to pass, unless ``value``
    is a number of seconds > 0 or None."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, or None for no limit; got {value!r}")
    if not value > 0:
        raise ValueError(f"{what} must be > 0 seconds, or None for no limit; got {value!r}")


TimeoutTypes = Union[Timeout, float, int, None]


@dataclass(frozen=True)
class ProxyConfig:
    """A proxy for both transports. ``repr`` hides the password."""

    scheme: str  # http, socks5 or socks5h
    host: str
    port: int
    auth: tuple[str, str] | None = None

    def __repr__(self) -> str:
        return f"ProxyConfig({self.safe_url!r})"

    @property
    def safe_url(self) -> str:
        """The URL with the password replaced by ``***``."""
        return self._url(hide_password=True)

    @property
    def url(self) -> str:
        """The full URL, credentials included (for requests' ``proxies``)."""
        return self._url(hide_password=False)

    def _url(self, *, hide_password: bool) -> str:
        user = ""
        if self.auth:
            name, password = (urllib.parse.quote(part, safe="") for part in self.auth)
            user = f"{name}:{'***' if hide_password else password}@"
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        return f"{self.scheme}://{user}{host}:{self.port}"

    def websocket_options(self) -> dict[str, Any]:
        """``websocket.create_connection`` keyword arguments for this proxy."""
        return {
            "http_proxy_host": self.host,
            "http_proxy_port": self.port,
            "http_proxy_auth": self.auth,
            "proxy_type": self.scheme,
            # The SDK already chose this proxy (NO_PROXY was weighed only when
            # trust_env): a no-proxy list that matches no host keeps
            # websocket-client from bypassing it by NO_PROXY, or for
            # localhost/127.0.0.1 (its default before 1.9).
            "http_no_proxy": ["(none)"],
        }


_PROXY_SCHEMES = ("http", "socks5", "socks5h")
_PROXY_USAGE = "use http://[user:pass@]host:port, socks5://... or socks5h://..."
SOCKS_EXTRA = 'SOCKS proxies need an extra: pip install ".[socks]" in a clone of myshell_sync'


def parse_proxy(url: str | None) -> ProxyConfig | None:
    """Parse a proxy URL; raise ValueError (or ImportError for SOCKS without
    its extra) with what to do instead."""
    if url is None:
        return None
    if not isinstance(url, str):
        raise TypeError(f"proxy must be a URL string, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _PROXY_SCHEMES:
        raise ValueError(f"unsupported proxy scheme {parts.scheme!r}: {_PROXY_USAGE}")
    try:
        port = parts.port
    except ValueError:
        port = 0  # not a number, or out of range: refused below
    if port is None:
        port = 1080 if parts.scheme.startswith("socks") else 8080
    elif port == 0:
        raise ValueError(f"proxy URL has a bad port: {_PROXY_USAGE}")
    if not parts.hostname:
        raise ValueError(f"proxy URL has no host: {_PROXY_USAGE}")
    if parts.scheme.startswith("socks"):
        _require_socks()
    auth = None
    if parts.username is not None:
        auth = (
            urllib.parse.unquote(parts.username),
            urllib.parse.unquote(parts.password or ""),
        )
    return ProxyConfig(parts.scheme, parts.hostname, port, auth)


def _require_socks() -> None:
    try:
        import python_socks  # noqa: F401  (websocket-client's SOCKS support)
        import socks  # noqa: F401  (PySocks: requests' SOCKS support)
    except ImportError:
        raise ImportError(SOCKS_EXTRA) from None


_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


def environment_proxy(url: str) -> ProxyConfig | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY/ALL_PROXY name for ``url``, unless
    NO_PROXY excludes it."""
    names = {name.lower() for name in os.environ}
    if not any(variable in names for variable in _PROXY_VARIABLES):
        return None  # the common case: no need to import urllib.request
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 (not in typeshed)
    if bypass(parts.hostname or "", proxies):
        return None
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen:
        return None
    if "://" not in chosen:
        chosen = "http://" + chosen
    return parse_proxy(chosen)


VerifyTypes = Union[bool, str, ssl.SSLContext]


def tls_options(verify: VerifyTypes) -> dict[str, Any]:
    """``sslopt`` for websocket-client from a ``check_verify`` value."""
    if verify is True:
        return {}
    if verify is False:
        return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    if isinstance(verify, ssl.SSLContext):
        return {"context": verify}  # used as is: its verify_mode, CAs, hostname check
    if os.path.isdir(verify):
        return {"ca_cert_path": verify}  # a c_rehash'ed directory, as requests' ca_cert_dir
    return {"ca_certs": verify}


def check_verify(verify: Any) -> VerifyTypes:
    """``verify`` as both transports take it: a bool, the path of a CA
    bundle file or directory (as a str), or an ``ssl.SSLContext`` (as is)."""
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    if isinstance(verify, (str, os.PathLike)):
        path = os.fspath(verify)
        if not os.path.exists(path):
            raise ValueError(f"verify={path!r}: no such CA bundle file or directory")
        return path
    raise TypeError(f"verify must be True, False, a CA bundle path or an ssl.SSLContext, not {verify!r}")
