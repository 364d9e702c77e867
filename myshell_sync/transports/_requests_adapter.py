"""requests' adapter whose connections a reply can cut while it waits.

urllib3 gives a reply's connection back to its pool from inside a read, once
the body is complete, so a reply cannot tell by itself whether it still
holds it. The pool and connection subclasses here track which reply holds
each connection, so that cancelling one reply cuts only a socket it still
holds, never one the pool has lent to another reply since. Tested with
urllib3 2.x (and the lowest versions ``setup.cfg`` allows).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import weakref
from typing import Any

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

__all__ = ["CancellableAdapter", "watch", "hold", "cut_if_held", "shutdown_response", "close_quietly"]

log = logging.getLogger("myshell_sync")

# The reply whose thread is running here (each reply has a thread of its own).
_current = threading.local()


def watch(reply: Any | None) -> None:
    """Tell connections on this thread which reply they serve: its
    ``waiting_on(conn)`` is called before each response's headers are read."""
    _current.reply = reply


class _WatchedConnection:
    """Tells the running reply which connection awaits the response headers,
    so that its ``cancel()`` can wake the thread blocked there."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        reply = getattr(_current, "reply", None)
        if reply is not None:
            reply.waiting_on(self)
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

    def __init__(self, *args: Any, ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> None:
        """``ssl_context``: the caller's context for every TLS connection
        (``verify=<SSLContext>``), used as given."""
        self._ssl_context = ssl_context
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._ssl_context is not None:
            kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if self._ssl_context is not None:
            proxy_kwargs["ssl_context"] = self._ssl_context
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def close(self) -> None:
        """Close the idle pooled connections too: urllib3 2.x leaves their
        sockets to the garbage collector."""
        for manager in [self.poolmanager, *self.proxy_manager.values()]:
            pools = manager.pools
            for key in pools.keys():  # noqa: SIM118 (the container refuses iteration)
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        super().close()


# Which reply holds each tracked connection, from its request until the
# connection goes back to the pool (urllib3 does that from inside a read once
# the body is complete, so the reply cannot tell by itself).
_holders: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_holders_lock = threading.Lock()


def hold(conn: urllib3.connection.HTTPConnection, reply: Any) -> None:
    """``reply`` holds ``conn`` until urllib3 gives it back to the pool."""
    with _holders_lock:
        _holders[conn] = reply


def cut_if_held(conn: urllib3.connection.HTTPConnection, reply: Any) -> None:
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


def shutdown_response(response: requests.Response) -> None:
    """Wake the thread blocked reading ``response`` and drop its connection."""
    shutdown = getattr(response.raw, "shutdown", None)  # urllib3 >= 2.3
    if shutdown is not None:
        try:
            shutdown()
        except Exception:  # already closed
            pass
    close_quietly(response)


def close_quietly(response: requests.Response) -> None:
    try:
        response.close()
    except Exception:  # closing a broken connection may fail; it is gone either way
        log.debug("closing an HTTP response failed", exc_info=True)
