"""The client's one ``requests.Session``, made on first use.

Every HTTP request of a client (the HTTP chat transport, ``energy()``, and
any later HTTP transport) goes through it, so keep-alive connections, the
proxy and TLS settings are shared. ``requests`` is imported only here and
only when a session is first needed.
"""

from __future__ import annotations

import ssl
import threading
from typing import TYPE_CHECKING

from .._config import ProxyConfig, VerifyTypes
from .._exceptions import ClientClosedError
from .base import reset_after_fork_too

if TYPE_CHECKING:
    import requests


class SessionHolder:
    """Makes the session on first use; closes it if it was made."""

    def __init__(self, *, verify: VerifyTypes, proxy: ProxyConfig | None, max_connections: int) -> None:
        self._verify = verify
        self._proxy = proxy
        self._max_connections = max_connections
        self._session: requests.Session | None = None
        self._lock = threading.Lock()
        self._closed = False
        reset_after_fork_too(self)

    def get(self) -> requests.Session:
        with self._lock:
            if self._closed:
                raise ClientClosedError()
            if self._session is None:
                self._session = _make_session(self._verify, self._proxy, self._max_connections)
            return self._session

    def close(self) -> None:
        """Close the session and its pooled sockets; idempotent."""
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def reset_after_fork(self) -> None:
        """Forget the parent's session: its pooled sockets serve the parent."""
        self._lock = threading.Lock()
        self._session = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._session is not None else "unused")
        return f"<SessionHolder {state}>"


def _make_session(verify: VerifyTypes, proxy: ProxyConfig | None, max_connections: int) -> requests.Session:
    import requests

    from ._requests_adapter import CancellableAdapter

    session = requests.Session()
    context = None
    if isinstance(verify, ssl.SSLContext):
        # With a context, requests must verify but load no CA file of its own.
        context, session.verify = verify, True
    else:
        session.verify = verify
    adapter = CancellableAdapter(pool_connections=1, pool_maxsize=max_connections, ssl_context=context)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # environment proxies were resolved by the client
    if proxy is not None:
        session.proxies = {"http": proxy.url, "https": proxy.url}
    return session
