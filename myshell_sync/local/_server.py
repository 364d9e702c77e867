"""``LocalMyshellServer``: the local MyShell server's lifecycle.

One aiohttp app on one port serves the Socket.IO side (``_socketio.py``,
PROTOCOL.md sections 1 and 6), the HTTP API (``_http.py``, sections 2 and 3)
and the key-based API (``_openapi.py``, section 8); given an ``ssl_context``
it serves HTTPS and WSS instead. It runs on its own asyncio loop in one daemon
thread, so synchronous code and tests can use it directly::

    with LocalMyshellServer(chunk_delay=0.01) as server:
        url = server.ws_url  # ws://127.0.0.1:PORT/ws/?EIO=4&transport=websocket
        api = server.base_url + "/v1/bot/chat/send_message"
        widget_run = server.base_url + "/public/v1/widget/run"

What the bots answer is in ``_rules.py``; the switches, counters and
``wait_for`` the server inherits are in ``_state.py``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from aiohttp import web

from ._http import HttpApi
from ._openapi import OpenApi
from ._rules import DEFAULT_BOTS, DEFAULT_HTTP_BOTS, DEFAULT_WIDGETS, LOCAL_API_KEY
from ._socketio import CLOSE_GRACE, ENGINEIO_PATH, SocketIoChat
from ._state import ServerState

__all__ = ["LocalMyshellServer"]

logger = logging.getLogger("myshell_sync.local")

THREAD_NAME = "myshell-local-server"
STARTUP_TIMEOUT = 10.0  # seconds start() waits for the site to serve


def _url_host(host: str) -> str:
    """Return ``host`` as it must appear in a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    """Create a listening-ready TCP socket bound to ``(host, port)``."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class LocalMyshellServer(ServerState):
    """A MyShell chat server on localhost, run in a background daemon thread.

    Keyword switches (also attributes, read once per request):

    - ``bots``: uid -> name of the bots served (default ``DEFAULT_BOTS``).
    - ``tokens``: accepted auth tokens; None accepts every client.
    - ``captcha_window``: a text_chat sooner than this many seconds after its
      socket's namespace connect gets ``need_verify_captcha``.
    - ``energy``: replies left for the whole server; None means unlimited.
    - ``error_event``: answer every text_chat with this event (a key of
      ``ERROR_EVENTS``) after ``error_after`` text_stream chunks.
    - ``chunk_delay``/``reply_delay``: seconds between chunks / before the first.
    - ``drop_after``: abort the TCP connection after that many chunks.
    - ``ping_interval``/``ping_timeout``: Engine.IO heartbeat, in seconds.

    These apply to the HTTP API as well (``captcha_window`` then counts from
    the server's start). The HTTP side also has:

    - ``http_bots``: numeric id -> name (default ``DEFAULT_HTTP_BOTS``).
    - ``http_status``: answer every send_message with this status (400-599):
      429 with ``Retry-After: <http_retry_after>`` (None omits it), 403 as a
      Cloudflare challenge, others with a JSON error body.
    - ``refreshed_token``: send it in a ``refreshed-auth-token`` header.
    - ``missing_replied``: end the stream after TEXT_STREAM_PUSH_FINISHED.
    - ``truncate_utf8``: end the stream inside a multi-byte character.

    The key-based API (``POST /public/v1/widget/run``, ``_openapi.py``) has:

    - ``api_keys``: accepted ``x-myshell-openapi-key`` values (default
      ``{LOCAL_API_KEY}``); any other key, or none, gets 401.
    - ``widgets``: widget id -> model name (default ``DEFAULT_WIDGETS``).
    - ``openapi_status``: answer widget runs with this status (400-599), for
      the next ``openapi_status_times`` runs only (None: every run); 429
      carries ``Retry-After: <openapi_retry_after>`` (None omits it).
    - ``openapi_failure``: answer 200 ``{"success": false, "message": <it>}``.
    - ``openapi_malformed``: answer 200 with a body of the wrong shape, one of
      ``MALFORMED_KINDS`` (``"no-result"``, ``"not-json"``,
      ``"result-not-json"``, ``"result-not-string"``).
    - ``openapi_delay``: seconds to wait before answering.

    ``ws_refuse_status`` (300-599) makes ``/ws/`` answer that status instead
    of upgrading. ``ssl_context`` serves HTTPS/WSS on the same port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bots: Mapping[str, str] | None = None,
        tokens: set[str] | None = None,
        captcha_window: float = 0.0,
        energy: int | None = None,
        error_event: str | None = None,
        error_after: int = 0,
        chunk_delay: float = 0.0,
        reply_delay: float = 0.0,
        drop_after: int | None = None,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        http_bots: Mapping[str, str] | None = None,
        http_status: int | None = None,
        http_retry_after: str | None = "2",
        refreshed_token: str | None = None,
        missing_replied: bool = False,
        truncate_utf8: bool = False,
        ws_refuse_status: int | None = None,
        api_keys: Iterable[str] | None = None,
        widgets: Mapping[str, str] | None = None,
        openapi_status: int | None = None,
        openapi_status_times: int | None = None,
        openapi_retry_after: str | None = "1",
        openapi_failure: str | None = None,
        openapi_malformed: str | None = None,
        openapi_delay: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self.bots = dict(DEFAULT_BOTS if bots is None else bots)
        self.http_bots = dict(DEFAULT_HTTP_BOTS if http_bots is None else http_bots)
        self.tokens = tokens
        self.captcha_window = captcha_window
        self.energy = energy
        self.error_event = error_event
        self.error_after = error_after
        self.chunk_delay = chunk_delay
        self.reply_delay = reply_delay
        self.drop_after = drop_after
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.http_status = http_status
        self.http_retry_after = http_retry_after
        self.refreshed_token = refreshed_token
        self.missing_replied = missing_replied
        self.truncate_utf8 = truncate_utf8
        self.ws_refuse_status = ws_refuse_status
        self.api_keys = {LOCAL_API_KEY} if api_keys is None else api_keys
        self.widgets = dict(DEFAULT_WIDGETS if widgets is None else widgets)
        self.openapi_status = openapi_status
        self.openapi_status_times = openapi_status_times
        self.openapi_retry_after = openapi_retry_after
        self.openapi_failure = openapi_failure
        self.openapi_malformed = openapi_malformed
        self.openapi_delay = openapi_delay
        self.ssl_context = ssl_context
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._chat = SocketIoChat(self)
        self._http = HttpApi(self)
        self._openapi = OpenApi(self)
        # The fields below are touched only on the server's loop thread.
        self._stopping: asyncio.Event | None = None
        self._transports: set[asyncio.Transport] = set()

    # ------------------------------------------------------------------
    # Addresses

    @property
    def port(self) -> int:
        """The TCP port (the OS-chosen one once started with port=0)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http(s)://HOST:PORT``, the base URL a client is configured with."""
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{_url_host(self.host)}:{self._port}"

    @property
    def ws_url(self) -> str:
        """The Engine.IO websocket URL clients connect to."""
        scheme = "ws" if self.ssl_context is None else "wss"
        return f"{scheme}://{_url_host(self.host)}:{self._port}/{ENGINEIO_PATH}/?EIO=4&transport=websocket"

    # ------------------------------------------------------------------
    # Lifecycle

    def start(self) -> LocalMyshellServer:
        """Bind, start the server thread, and return once it is serving.

        After ``stop()``, ``start()`` serves again on the same port.
        """
        if self._thread is not None:
            raise RuntimeError("the local server is already running")
        try:
            sock = _bind(self.host, self._port)
        except OSError as exc:
            raise RuntimeError(f"the local server cannot bind {self.host}:{self._port}: {exc}") from exc
        self._port = sock.getsockname()[1]
        self._ready.clear()
        thread = threading.Thread(target=self._run, args=(sock,), name=THREAD_NAME, daemon=True)
        self._thread = thread
        thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            self.stop()
            raise RuntimeError("the local server did not start in time")
        if self._startup_error is not None:
            thread.join(STARTUP_TIMEOUT)
            self._thread = None
            raise RuntimeError(f"the local server failed to start: {self._startup_error!r}") from self._startup_error
        logger.info("local MyShell server serving at %s", self.base_url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection, stop the loop and join the thread.

        Idempotent. Logs a warning if the thread outlives ``timeout``.
        """
        thread = self._thread
        if thread is None:
            return
        self._call_soon(self._request_stop)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("local server thread still alive after %.1f s", timeout)
            return
        self._thread = None
        logger.info("local MyShell server on port %d stopped", self._port)

    def disconnect_all(self, timeout: float = 5.0) -> None:
        """Disconnect every /chat client at the namespace level (``41/chat,``)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("disconnect_all() must not run on the server thread")
        loop = self._loop
        if self._thread is None or loop is None or loop.is_closed():
            raise RuntimeError("the local server is not running")
        future = asyncio.run_coroutine_threadsafe(self._chat.disconnect_all(), loop)
        future.result(timeout)

    def __enter__(self) -> LocalMyshellServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<LocalMyshellServer {self.base_url} {state}>"

    # ------------------------------------------------------------------
    # Thread and loop

    def _run(self, sock: socket.socket) -> None:
        """Thread body: serve until stopped, then release the socket."""
        self._startup_error = None  # before _ready is set: start() reads it then
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # noqa: B902 - reported to start()
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                logger.exception("local server loop crashed")
        finally:
            sock.close()
            self._loop = None
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        """Start the site, wait for stop(), then shut down gracefully."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._transports = set()
        runner = web.AppRunner(self._build_app(), access_log=None)
        try:
            await runner.setup()
            await web.SockSite(runner, sock, ssl_context=self.ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown(runner)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the server loop, if it is still running."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _build_app(self) -> web.Application:
        """Create the aiohttp app serving both protocol sides."""
        app = web.Application(middlewares=[self._track_transport, self._chat.refuse_upgrade])
        self._chat.attach(app, self.ping_interval, self.ping_timeout)
        self._http.attach(app)
        self._openapi.attach(app)
        return app

    @web.middleware
    async def _track_transport(self, request: web.Request, handler: Callable[..., Any]) -> Any:
        """Remember each open connection so shutdown can close it."""
        transport = request.transport
        if transport is not None:
            self._transports.add(transport)
        try:
            return await handler(request)
        finally:
            self._transports.discard(transport)

    async def _shutdown(self, runner: web.AppRunner) -> None:
        """Cancel replies, streams and delayed runs, send Engine.IO close, stop the web server."""
        await self._chat.cancel_replies()
        await self._http.close_streams()
        await self._openapi.close()
        await self._chat.close()
        await self._wait_transports_closed(CLOSE_GRACE)
        for transport in list(self._transports):
            transport.abort()
        await runner.cleanup()

    async def _wait_transports_closed(self, timeout: float) -> None:
        """Give clients ``timeout`` seconds to close their connections."""
        deadline = time.monotonic() + timeout
        while self._transports and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
