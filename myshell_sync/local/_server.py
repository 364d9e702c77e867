"""A local MyShell chat server: the offline default and the test peer.

It speaks the wire protocol of ``api.myshell.ai`` (PROTOCOL.md sections 1
and 6) through python-socketio's ``AsyncServer`` on aiohttp: Engine.IO v4 at
``/ws/``, Socket.IO v5 namespace ``/chat``. On the same port it serves the
HTTP API (PROTOCOL.md sections 2 and 3): ``POST /v1/bot/chat/send_message``
streaming the reply as server-sent events, and ``GET /user/getUserEnergyInfo``
(see ``_http.py`` for that side). Given an ``ssl_context`` it serves HTTPS
and WSS instead. It runs on its own asyncio loop in one daemon thread, so
synchronous code and tests can use it directly::

    with LocalMyshellServer(chunk_delay=0.01) as server:
        url = server.ws_url  # ws://127.0.0.1:PORT/ws/?EIO=4&transport=websocket
        api = server.base_url + "/v1/bot/chat/send_message"

What the bots answer (the reply rule, ``reply_chunks``) and how the fault
switches cut a reply are in ``_rules.py``.

Events of a normal reply, in order, all carrying the request's ``reqId``:
``message_sent``, ``reply_message_created``, ``text_stream`` (one per
chunk), ``message_replied``; then ``energy_info`` (no ``reqId``) when an
energy budget is set. Requests are answered concurrently, each in its own
task, so with ``chunk_delay > 0`` the frames of several replies interleave.
Over HTTP the same rule answers, with bots addressed by numeric id strings
(``http_bots``), one ``..._TEXT`` event per chunk.

Fault switches are constructor keywords and also plain attributes that tests
may change between requests; each request reads them once, on arrival:
``captcha_window``, ``tokens``, ``energy``, ``error_event``/``error_after``,
``chunk_delay``, ``reply_delay``, ``drop_after`` (see ``LocalMyshellServer``);
they apply to both sides. HTTP-only switches: ``http_status``,
``http_retry_after``, ``refreshed_token``, ``missing_replied``,
``truncate_utf8``. ``ws_refuse_status`` makes ``/ws/`` answer plain HTTP with
that status instead of upgrading.

python-engineio advertises ``pingInterval`` in whole seconds (it truncates
``int(seconds) * 1000``), so a fractional ``ping_interval`` is advertised
rounded up; the pings themselves keep the exact interval.

python-socketio/engineio log to the child loggers ``myshell_sync.local.socketio``
and ``myshell_sync.local.engineio``, kept at WARNING because at INFO they log
every packet, tokens included; set their level explicitly to see packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import (Any, Callable, Dict, Iterator, List, Mapping, Optional, Set,
                    Tuple)

import socketio
from aiohttp import web
from socketio import exceptions as sio_exceptions

from ._rules import (DEFAULT_BOTS, DEFAULT_HTTP_BOTS, DROP, ERROR, ERROR_EVENTS, Plan,
                     reply_chunks, text_chat_problem)

__all__ = ["LocalMyshellServer"]

logger = logging.getLogger("myshell_sync.local")

NAMESPACE = "/chat"
ENGINEIO_PATH = "ws"  # python-socketio serves it as /ws/
THREAD_NAME = "myshell-local-server"
STARTUP_TIMEOUT = 10.0  # seconds start() waits for the site to serve
CLOSE_GRACE = 0.5  # seconds clients get to close after the Engine.IO close


def _ping_interval_arg(seconds: float) -> Tuple[float, float]:
    """Return engineio's ``(interval, grace)`` so it advertises ceil(seconds).

    engineio only adds the grace period to the advertised value.
    """
    return seconds, math.ceil(seconds) - seconds


def _wire_logger(name: str) -> logging.Logger:
    """The logger python-socketio/engineio log every packet to.

    Packets carry the clients' tokens, so these loggers stay at WARNING unless
    a user sets their level explicitly (``myshell_sync.local.socketio`` and
    ``myshell_sync.local.engineio``).
    """
    wire = logging.getLogger(f"myshell_sync.local.{name}")
    if wire.level == logging.NOTSET:
        wire.setLevel(logging.WARNING)
    return wire


def _abort(transport: Optional[asyncio.BaseTransport]) -> None:
    """Cut a TCP connection at once (no close handshake)."""
    if isinstance(transport, asyncio.Transport):
        transport.abort()


def _now_iso() -> str:
    """Return the current UTC time as the service formats createdDate."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _url_host(host: str) -> str:
    """Return ``host`` as it must appear in a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def _checked_status(name: str, value: Optional[int], lowest: int) -> Optional[int]:
    """Validate a status-code switch: None or an int in ``lowest``..599."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not lowest <= value <= 599):
        raise ValueError(f"{name} must be None or an HTTP status {lowest}-599")
    return value


def _bind(host: str, port: int) -> socket.socket:
    """Create a listening-ready TCP socket bound to ``(host, port)``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class _Session:
    """What the server keeps per connected /chat sid."""

    connected_at: float
    transport: Optional[asyncio.BaseTransport]


class LocalMyshellServer:
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

    ``ws_refuse_status`` (300-599) makes ``/ws/`` answer that status instead
    of upgrading. ``ssl_context`` serves HTTPS/WSS on the same port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bots: Optional[Mapping[str, str]] = None,
        tokens: Optional[Set[str]] = None,
        captcha_window: float = 0.0,
        energy: Optional[int] = None,
        error_event: Optional[str] = None,
        error_after: int = 0,
        chunk_delay: float = 0.0,
        reply_delay: float = 0.0,
        drop_after: Optional[int] = None,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        http_bots: Optional[Mapping[str, str]] = None,
        http_status: Optional[int] = None,
        http_retry_after: Optional[str] = "2",
        refreshed_token: Optional[str] = None,
        missing_replied: bool = False,
        truncate_utf8: bool = False,
        ws_refuse_status: Optional[int] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        from ._http import HttpApi  # here: _http builds on this module

        self.host = host
        self.bots: Dict[str, str] = dict(DEFAULT_BOTS if bots is None else bots)
        self.http_bots: Dict[str, str] = dict(
            DEFAULT_HTTP_BOTS if http_bots is None else http_bots)
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
        self.ssl_context = ssl_context
        self._port = port
        self._cond = threading.Condition()
        self._connects = 0
        self._refused = 0
        self._disconnects = 0
        self._requests: List[Any] = []
        self._auths: List[Any] = []
        self._completed: List[Optional[str]] = []
        self._active: Set[str] = set()
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._ready = threading.Event()
        self._startup_error: Optional[BaseException] = None
        self._ids = itertools.count(1)
        self._http = HttpApi(self)
        # The fields below are touched only on the server's loop thread.
        self._sio: Optional[socketio.AsyncServer] = None
        self._stopping: Optional[asyncio.Event] = None
        self._sessions: Dict[str, _Session] = {}
        self._tasks: Dict[str, Set[asyncio.Task]] = {}
        self._transports: Set[asyncio.BaseTransport] = set()

    # ------------------------------------------------------------------
    # Switches with validation

    @property
    def error_event(self) -> Optional[str]:
        """The event every text_chat is answered with, or None."""
        return self._error_event

    @error_event.setter
    def error_event(self, value: Optional[str]) -> None:
        if value is not None and value not in ERROR_EVENTS:
            raise ValueError(
                f"error_event must be one of {sorted(ERROR_EVENTS)} or None")
        self._error_event = value

    @property
    def http_status(self) -> Optional[int]:
        """The status every send_message is answered with, or None."""
        return self._http_status

    @http_status.setter
    def http_status(self, value: Optional[int]) -> None:
        self._http_status = _checked_status("http_status", value, 400)

    @property
    def ws_refuse_status(self) -> Optional[int]:
        """The status ``/ws/`` answers instead of upgrading, or None."""
        return self._ws_refuse_status

    @ws_refuse_status.setter
    def ws_refuse_status(self, value: Optional[int]) -> None:
        self._ws_refuse_status = _checked_status("ws_refuse_status", value, 300)

    # ------------------------------------------------------------------
    # Observability (thread-safe)

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
        return (f"{scheme}://{_url_host(self.host)}:{self._port}"
                f"/{ENGINEIO_PATH}/?EIO=4&transport=websocket")

    @property
    def connects(self) -> int:
        """How many /chat namespace connects were accepted."""
        with self._cond:
            return self._connects

    @property
    def refused(self) -> int:
        """How many /chat namespace connects were refused."""
        with self._cond:
            return self._refused

    @property
    def disconnects(self) -> int:
        """How many /chat sids disconnected, for any reason."""
        with self._cond:
            return self._disconnects

    @property
    def auths(self) -> List[Any]:
        """A copy of the auth payload of every /chat connect, refused ones too."""
        with self._cond:
            return list(self._auths)

    @property
    def requests(self) -> List[Any]:
        """A copy of every text_chat payload received, in arrival order."""
        with self._cond:
            return list(self._requests)

    @property
    def completed(self) -> List[Optional[str]]:
        """reqIds whose handling ended (reply, error, drop or cancel), in order."""
        with self._cond:
            return list(self._completed)

    @property
    def active_sids(self) -> Set[str]:
        """A copy of the /chat sids connected now."""
        with self._cond:
            return set(self._active)

    @property
    def http_requests(self) -> List[Dict[str, Any]]:
        """Every send_message received: ``{"headers": {lower-cased}, "json"}``.

        ``json`` is None when the body was not JSON. Refused requests count.
        """
        with self._cond:
            return list(self._http.requests)

    @property
    def open_http_streams(self) -> int:
        """How many send_message responses are streaming now."""
        with self._cond:
            return self._http.open_streams

    @property
    def http_cancelled(self) -> int:
        """How many send_message streams ended because the client went away."""
        with self._cond:
            return self._http.cancelled

    def wait_for(self, predicate: Callable[["LocalMyshellServer"], bool],
                 timeout: float) -> bool:
        """Block until ``predicate(self)`` is true; False if ``timeout`` passes."""
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate(self), timeout))

    # ------------------------------------------------------------------
    # Lifecycle

    def start(self) -> "LocalMyshellServer":
        """Bind, start the server thread, and return once it is serving.

        After ``stop()``, ``start()`` serves again on the same port.
        """
        if self._thread is not None:
            raise RuntimeError("the local server is already running")
        try:
            sock = _bind(self.host, self._port)
        except OSError as exc:
            raise RuntimeError(
                f"the local server cannot bind {self.host}:{self._port}: {exc}"
            ) from exc
        self._port = sock.getsockname()[1]
        self._ready.clear()
        self._startup_error = None
        thread = threading.Thread(
            target=self._run, args=(sock,), name=THREAD_NAME, daemon=True)
        self._thread = thread
        thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT):
            self.stop()
            raise RuntimeError("the local server did not start in time")
        if self._startup_error is not None:
            thread.join(STARTUP_TIMEOUT)
            self._thread = None
            raise RuntimeError(
                f"the local server failed to start: {self._startup_error!r}"
            ) from self._startup_error
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
        future = asyncio.run_coroutine_threadsafe(self._disconnect_all(), loop)
        future.result(timeout)

    def __enter__(self) -> "LocalMyshellServer":
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
        self._sessions, self._tasks, self._transports = {}, {}, set()
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
        """Create the aiohttp app with the Socket.IO server attached."""
        sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins="*",
            ping_interval=_ping_interval_arg(self.ping_interval),
            ping_timeout=self.ping_timeout,
            async_handlers=False,  # handlers only decide; replies run as tasks
            logger=_wire_logger("socketio"),
            engineio_logger=_wire_logger("engineio"),
        )
        sio.on("connect", self._on_connect, namespace=NAMESPACE)
        sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        sio.on("text_chat", self._on_text_chat, namespace=NAMESPACE)
        app = web.Application(middlewares=[self._track_transport, self._refuse_upgrade])
        sio.attach(app, socketio_path=ENGINEIO_PATH)
        self._http.attach(app)
        self._sio = sio
        return app

    @web.middleware
    async def _track_transport(self, request: web.Request,
                               handler: Callable[..., Any]) -> Any:
        """Remember each open connection so shutdown can close it."""
        transport = request.transport
        if transport is not None:
            self._transports.add(transport)
        try:
            return await handler(request)
        finally:
            self._transports.discard(transport)

    @web.middleware
    async def _refuse_upgrade(self, request: web.Request,
                              handler: Callable[..., Any]) -> Any:
        """Answer ``/ws/`` with ``ws_refuse_status`` instead of upgrading, if set."""
        status = self.ws_refuse_status
        if status is not None and request.path.startswith(f"/{ENGINEIO_PATH}/"):
            logger.info("refusing the websocket upgrade with %d", status)
            return web.Response(status=status, text="websocket refused (simulated)")
        return await handler(request)

    async def _shutdown(self, runner: web.AppRunner) -> None:
        """Cancel replies and streams, send Engine.IO close, stop the web server."""
        tasks = [t for group in self._tasks.values() for t in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.close_streams()
        assert self._sio is not None
        await self._sio.shutdown()
        await self._close_engineio()
        await self._wait_transports_closed(CLOSE_GRACE)
        for transport in list(self._transports):
            _abort(transport)
        await runner.cleanup()

    async def _close_engineio(self) -> None:
        """Send every Engine.IO socket the close packet (``1``)."""
        assert self._sio is not None
        # Not eio.disconnect(): it raises ValueError when no socket is left.
        sockets = [s for s in self._sio.eio.sockets.values()
                   if not (s.closed or s.closing)]
        if not sockets:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(*(s.close() for s in sockets)), CLOSE_GRACE)
        except asyncio.TimeoutError:
            logger.warning("clients did not take the close packet in time")

    async def _wait_transports_closed(self, timeout: float) -> None:
        """Give clients ``timeout`` seconds to close their connections."""
        deadline = time.monotonic() + timeout
        while self._transports and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _disconnect_all(self) -> None:
        assert self._sio is not None
        for sid in list(self._sessions):
            await self._sio.disconnect(sid, namespace=NAMESPACE)

    # ------------------------------------------------------------------
    # Socket.IO handlers (loop thread)

    async def _on_connect(self, sid: str, environ: Dict[str, Any],
                          auth: Any = None) -> None:
        """Accept or refuse a /chat connect, by token."""
        token = auth.get("token") if isinstance(auth, dict) else None
        with self._changing():
            self._auths.append(dict(auth) if isinstance(auth, dict) else auth)
        tokens = self.tokens
        if tokens is not None and token not in tokens:
            with self._changing():
                self._refused += 1
            logger.info("refused %s: bad token", sid)
            raise sio_exceptions.ConnectionRefusedError("invalid token")
        request = environ.get("aiohttp.request")
        transport = request.transport if request is not None else None
        self._sessions[sid] = _Session(time.monotonic(), transport)
        with self._changing():
            self._connects += 1
            self._active.add(sid)
        logger.info("connected %s", sid)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        """Forget a /chat sid and cancel its replies."""
        self._sessions.pop(sid, None)
        for task in self._tasks.pop(sid, set()):
            task.cancel()
        with self._changing():
            self._disconnects += 1
            self._active.discard(sid)
        logger.info("disconnected %s (%s)", sid, reason)

    async def _on_text_chat(self, sid: str, payload: Any = None,
                            *_ignored: Any) -> None:
        """Answer one text_chat: an error event now, or a reply task."""
        received_at = time.monotonic()
        with self._changing():
            self._requests.append(
                dict(payload) if isinstance(payload, dict) else payload)
        problem = text_chat_problem(payload)
        if problem is not None:
            req_id = payload.get("reqId") if isinstance(payload, dict) else None
            await self._emit_error(sid, req_id, "exception", problem)
            return
        req_id = payload["reqId"]
        rejection = self._rejection(sid, payload, received_at)
        if rejection is not None:
            await self._emit_error(sid, req_id, *rejection)
            return
        self._spawn(sid, req_id, self._reply(sid, payload, self._plan()))

    def _rejection(self, sid: str, payload: Dict[str, Any],
                   received_at: float) -> Optional[Tuple[str, str]]:
        """Return ``(event, message)`` if the request gets no reply at all."""
        session = self._sessions.get(sid)
        window = self.captcha_window
        if session is not None and received_at - session.connected_at < window:
            return "need_verify_captcha", "need verify captcha"
        if payload["botUid"] not in self.bots:
            return "message_error", "bot not found"
        event = self.error_event
        if event is not None and self.error_after <= 0:
            return event, ERROR_EVENTS[event]
        if event is None and not self._take_energy():
            return "no_enough_energy", "no enough energy"
        return None

    def _take_energy(self) -> bool:
        """Spend one unit of the energy budget; False if none is left."""
        with self._cond:
            if self.energy is None:
                return True
            if self.energy <= 0:
                return False
            self.energy -= 1
            return True

    def _plan(self) -> Plan:
        """Snapshot the switches that shape a reply."""
        return Plan(
            error_event=self.error_event,
            error_after=max(0, self.error_after),
            chunk_delay=self.chunk_delay,
            reply_delay=self.reply_delay,
            drop_after=self.drop_after,
            report_energy=self.energy is not None,
            missing_replied=self.missing_replied,
            truncate_utf8=self.truncate_utf8,
        )

    # ------------------------------------------------------------------
    # Replies (loop thread)

    async def _reply(self, sid: str, payload: Dict[str, Any], plan: Plan) -> None:
        """Stream one reply, or stop it where a fault switch says."""
        req_id, bot_uid = payload["reqId"], payload["botUid"]
        user = self._message("TEXT", bot_uid, payload["text"], "DONE", None)
        await self._emit(sid, "message_sent", {"reqId": req_id, "data": user})
        placeholder = self._message("REPLY", bot_uid, None, "PROCESSING", user["uid"])
        await self._emit(sid, "reply_message_created",
                         {"reqId": req_id, "data": placeholder})
        chunks = reply_chunks(self.bots.get(bot_uid, bot_uid), payload["text"])
        if plan.reply_delay > 0:
            await asyncio.sleep(plan.reply_delay)
        trace_id = uuid.uuid4().hex
        for index, chunk in enumerate(chunks):
            if await self._interrupted(sid, req_id, plan, index):
                return
            if index and plan.chunk_delay > 0:
                await asyncio.sleep(plan.chunk_delay)
            data = {"replyMessage": placeholder, "index": index, "text": chunk,
                    "isFinal": index == len(chunks) - 1}
            await self._emit(sid, "text_stream",
                             {"reqId": req_id, "traceId": trace_id, "data": data})
        if await self._interrupted(sid, req_id, plan, len(chunks), last=True):
            return
        final = dict(placeholder, text="".join(chunks), status="DONE")
        await self._emit(sid, "message_replied", {"reqId": req_id, "data": final})
        if plan.report_energy:
            await self._emit(sid, "energy_info", {"data": self.energy})

    async def _interrupted(self, sid: str, req_id: str, plan: Plan,
                           sent: int, last: bool = False) -> bool:
        """Drop or fail the reply once ``sent`` chunks are out, if planned."""
        cut = plan.cut_at(sent, last)
        if cut == DROP:
            await self._drop(sid)
        elif cut == ERROR:
            assert plan.error_event is not None
            await self._emit_error(sid, req_id, plan.error_event,
                                   ERROR_EVENTS[plan.error_event])
        return cut is not None

    async def _drop(self, sid: str) -> None:
        """Abort the sid's TCP connection after flushing what was emitted."""
        session = self._sessions.get(sid)
        if session is None or session.transport is None:
            logger.warning("cannot drop %s: no transport", sid)
            return
        await self._flush(sid, session.transport)
        logger.info("dropping the connection of %s", sid)
        _abort(session.transport)

    async def _flush(self, sid: str, transport: asyncio.BaseTransport,
                     timeout: float = 1.0) -> None:
        """Wait until Engine.IO's queue and the TCP buffer for ``sid`` are empty.

        Emits are only queued; Engine.IO's writer task sends them later.
        """
        assert self._sio is not None
        deadline = time.monotonic() + timeout
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        eio_socket = self._sio.eio.sockets.get(eio_sid)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            queued = eio_socket is not None and not eio_socket.queue.empty()
            buffered = getattr(transport, "get_write_buffer_size", lambda: 0)()
            if not queued and not buffered:
                return

    def _message(self, kind: str, bot_uid: str, text: Optional[str],
                 status: str, reply_uid: Optional[str]) -> Dict[str, Any]:
        """Build a small, plausible MessageDto."""
        return {
            "id": next(self._ids),
            "uid": uuid.uuid4().hex,
            "type": kind,
            "botUid": bot_uid,
            "text": text,
            "status": status,
            "replyUid": reply_uid,
            "createdDate": _now_iso(),
        }

    async def _emit(self, sid: str, event: str, payload: Dict[str, Any]) -> None:
        assert self._sio is not None
        await self._sio.emit(event, payload, to=sid, namespace=NAMESPACE)

    async def _emit_error(self, sid: str, req_id: Any, event: str,
                          message: str) -> None:
        """Emit a terminal error event and count the request as completed."""
        payload: Dict[str, Any] = {"reqId": req_id} if isinstance(req_id, str) else {}
        if event == "chat_login_popup":
            payload["data"] = {}
        else:
            payload["message"] = message
        await self._emit(sid, event, payload)
        self._mark_done(req_id if isinstance(req_id, str) else None)

    def _spawn(self, sid: str, req_id: str, coro: Any) -> None:
        """Run a reply as a task owned by ``sid``."""
        task = asyncio.ensure_future(coro)
        self._tasks.setdefault(sid, set()).add(task)
        task.add_done_callback(lambda t: self._reply_done(sid, req_id, t))

    def _reply_done(self, sid: str, req_id: str, task: asyncio.Task) -> None:
        self._tasks.get(sid, set()).discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("reply %s failed", req_id, exc_info=task.exception())
        self._mark_done(req_id)

    # ------------------------------------------------------------------
    # Shared state (any thread)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the state lock; on exit wake every ``wait_for``."""
        with self._cond:
            yield
            self._cond.notify_all()

    def _mark_done(self, req_id: Optional[str]) -> None:
        with self._changing():
            self._completed.append(req_id)
