"""The Socket.IO side of the local MyShell server (PROTOCOL.md sections 1 and 6).

python-socketio's ``AsyncServer`` on the server's aiohttp app: Engine.IO v4
at ``/ws/``, Socket.IO v5 namespace ``/chat``. A connect is accepted by token
(``tokens``); every ``text_chat`` is validated, then answered with an error
event at once or by a reply task.

Events of a normal reply, in order, all carrying the request's ``reqId``:
``message_sent``, ``reply_message_created``, ``text_stream`` (one per chunk
of ``reply_chunks``; the last one carries text *and* ``isFinal: true``),
``message_replied``; then ``energy_info`` (no ``reqId``) when an energy
budget is set. Requests are answered concurrently, each in its own task, so
with ``chunk_delay > 0`` the frames of several replies interleave.

python-engineio advertises ``pingInterval`` in whole seconds (it truncates
``int(seconds) * 1000``), so a fractional ``ping_interval`` is advertised
rounded up; the pings themselves keep the exact interval.

python-socketio/engineio log to the child loggers ``myshell_sync.local.socketio``
and ``myshell_sync.local.engineio``, kept at WARNING because at INFO they log
every packet, tokens included; set their level explicitly to see packets.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import socketio
from aiohttp import web
from socketio import exceptions as sio_exceptions

from ._rules import DROP, ERROR, ERROR_EVENTS, Plan, reply_chunks, text_chat_problem
from ._state import Recorder, ServerState

__all__ = ["CLOSE_GRACE", "ENGINEIO_PATH", "NAMESPACE", "SocketIoChat"]

logger = logging.getLogger("myshell_sync.local")

NAMESPACE = "/chat"
ENGINEIO_PATH = "ws"  # python-socketio serves it as /ws/
CLOSE_GRACE = 0.5  # seconds clients get to close after the Engine.IO close
FLUSH_TIMEOUT = 1.0  # seconds drop_after waits for the frames to leave


def _ping_interval_arg(seconds: float) -> tuple[float, float]:
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


def _now_iso() -> str:
    """Return the current UTC time as the service formats createdDate."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass
class _Session:
    """What the server keeps per connected /chat sid."""

    connected_at: float
    transport: asyncio.Transport | None


class SocketIoChat:
    """The ``/chat`` namespace of one server, recording into its ``ServerState``.

    Everything but ``__init__`` runs on the server's loop thread.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._recorder = Recorder(state)
        self._ids = itertools.count(1)
        self._sio: socketio.AsyncServer | None = None
        self._sessions: dict[str, _Session] = {}
        self._tasks: dict[str, set[asyncio.Task[Any]]] = {}

    def attach(self, app: web.Application, ping_interval: float, ping_timeout: float) -> None:
        """Serve Socket.IO on a new app (called on every server start)."""
        sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins="*",
            ping_interval=_ping_interval_arg(ping_interval),
            ping_timeout=ping_timeout,
            async_handlers=False,  # handlers only decide; replies run as tasks
            logger=_wire_logger("socketio"),
            engineio_logger=_wire_logger("engineio"),
        )
        sio.on("connect", self._on_connect, namespace=NAMESPACE)
        sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        sio.on("text_chat", self._on_text_chat, namespace=NAMESPACE)
        sio.attach(app, socketio_path=ENGINEIO_PATH)
        self._sio = sio
        self._sessions, self._tasks = {}, {}

    @web.middleware
    async def refuse_upgrade(self, request: web.Request, handler: Callable[..., Any]) -> Any:
        """Answer ``/ws/`` with ``ws_refuse_status`` instead of upgrading, if set."""
        status = self._state.ws_refuse_status
        if status is not None and request.path.startswith(f"/{ENGINEIO_PATH}/"):
            logger.info("refusing the websocket upgrade with %d", status)
            return web.Response(status=status, text="websocket refused (simulated)")
        return await handler(request)

    async def cancel_replies(self) -> None:
        """Cancel every reply task and wait for them to end (server shutdown)."""
        tasks = [t for group in self._tasks.values() for t in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Shut Socket.IO down and send every Engine.IO socket the close packet."""
        assert self._sio is not None
        await self._sio.shutdown()
        # Not eio.disconnect(): it raises ValueError when no socket is left.
        sockets = [s for s in self._sio.eio.sockets.values() if not (s.closed or s.closing)]
        if not sockets:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(s.close() for s in sockets)), CLOSE_GRACE)
        except asyncio.TimeoutError:
            logger.warning("clients did not take the close packet in time")

    async def disconnect_all(self) -> None:
        """Disconnect every /chat sid at the namespace level (``41/chat,``)."""
        assert self._sio is not None
        for sid in list(self._sessions):
            await self._sio.disconnect(sid, namespace=NAMESPACE)

    # ------------------------------------------------------------------
    # Handlers

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Accept or refuse a /chat connect, by token."""
        token = auth.get("token") if isinstance(auth, dict) else None
        self._recorder.record_auth(auth)
        tokens = self._state.tokens
        if tokens is not None and token not in tokens:
            self._recorder.count_refused()
            logger.info("refused %s: bad token", sid)
            raise sio_exceptions.ConnectionRefusedError("invalid token")
        request = environ.get("aiohttp.request")
        transport = request.transport if request is not None else None
        self._sessions[sid] = _Session(time.monotonic(), transport)
        self._recorder.count_connect(sid)
        logger.info("connected %s", sid)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        """Forget a /chat sid and cancel its replies."""
        self._sessions.pop(sid, None)
        for task in self._tasks.pop(sid, set()):
            task.cancel()
        self._recorder.count_disconnect(sid)
        logger.info("disconnected %s (%s)", sid, reason)

    async def _on_text_chat(self, sid: str, payload: Any = None, *_ignored: Any) -> None:
        """Answer one text_chat: an error event now, or a reply task."""
        received_at = time.monotonic()
        self._recorder.record_request(payload)
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
        self._spawn(sid, req_id, self._reply(sid, payload, self._recorder.plan()))

    def _rejection(self, sid: str, payload: dict[str, Any], received_at: float) -> tuple[str, str] | None:
        """Return ``(event, message)`` if the request gets no reply at all."""
        state = self._state
        session = self._sessions.get(sid)
        if session is not None and received_at - session.connected_at < state.captcha_window:
            return "need_verify_captcha", "need verify captcha"
        if payload["botUid"] not in state.bots:
            return "message_error", "bot not found"
        event = state.error_event
        if event is not None and state.error_after <= 0:
            return event, ERROR_EVENTS[event]
        if event is None and not self._recorder.take_energy():
            return "no_enough_energy", "no enough energy"
        return None

    # ------------------------------------------------------------------
    # Replies

    async def _reply(self, sid: str, payload: dict[str, Any], plan: Plan) -> None:
        """Stream one reply, or stop it where the plan says."""
        req_id, bot_uid = payload["reqId"], payload["botUid"]
        user = self._message("TEXT", bot_uid, payload["text"], "DONE", None)
        await self._emit(sid, "message_sent", {"reqId": req_id, "data": user})
        placeholder = self._message("REPLY", bot_uid, None, "PROCESSING", user["uid"])
        await self._emit(sid, "reply_message_created", {"reqId": req_id, "data": placeholder})
        chunks = reply_chunks(self._state.bots.get(bot_uid, bot_uid), payload["text"])
        if plan.reply_delay > 0:
            await asyncio.sleep(plan.reply_delay)
        trace_id = uuid.uuid4().hex
        for index, chunk in enumerate(chunks):
            if await self._interrupted(sid, req_id, plan, index):
                return
            if index and plan.chunk_delay > 0:
                await asyncio.sleep(plan.chunk_delay)
            data = {"replyMessage": placeholder, "index": index, "text": chunk, "isFinal": index == len(chunks) - 1}
            await self._emit(sid, "text_stream", {"reqId": req_id, "traceId": trace_id, "data": data})
        if await self._interrupted(sid, req_id, plan, len(chunks), last=True):
            return
        final = dict(placeholder, text="".join(chunks), status="DONE")
        await self._emit(sid, "message_replied", {"reqId": req_id, "data": final})
        if plan.report_energy:
            await self._emit(sid, "energy_info", {"data": self._state.energy})

    async def _interrupted(self, sid: str, req_id: str, plan: Plan, sent: int, last: bool = False) -> bool:
        """Drop or fail the reply once ``sent`` chunks are out, if planned."""
        cut = plan.cut_at(sent, last)
        if cut == DROP:
            await self._drop(sid)
        elif cut == ERROR:
            assert plan.error_event is not None
            await self._emit_error(sid, req_id, plan.error_event, ERROR_EVENTS[plan.error_event])
        return cut is not None

    async def _drop(self, sid: str) -> None:
        """Abort the sid's TCP connection after flushing what was emitted."""
        session = self._sessions.get(sid)
        if session is None or session.transport is None:
            logger.warning("cannot drop %s: no transport", sid)
            return
        await self._flush(sid, session.transport)
        logger.info("dropping the connection of %s", sid)
        session.transport.abort()

    async def _flush(self, sid: str, transport: asyncio.Transport) -> None:
        """Wait until Engine.IO's queue and the TCP buffer for ``sid`` are empty.

        Emits are only queued; Engine.IO's writer task sends them later.
        """
        assert self._sio is not None
        deadline = time.monotonic() + FLUSH_TIMEOUT
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        eio_socket = self._sio.eio.sockets.get(eio_sid)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            queued = eio_socket is not None and not eio_socket.queue.empty()
            if not queued and not transport.get_write_buffer_size():
                return

    def _message(self, kind: str, bot_uid: str, text: str | None, status: str, reply_uid: str | None) -> dict[str, Any]:
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

    async def _emit(self, sid: str, event: str, payload: dict[str, Any]) -> None:
        assert self._sio is not None
        await self._sio.emit(event, payload, to=sid, namespace=NAMESPACE)

    async def _emit_error(self, sid: str, req_id: Any, event: str, message: str) -> None:
        """Emit a terminal error event and count the request as completed."""
        payload: dict[str, Any] = {"reqId": req_id} if isinstance(req_id, str) else {}
        if event == "chat_login_popup":
            payload["data"] = {}
        else:
            payload["message"] = message
        await self._emit(sid, event, payload)
        self._recorder.mark_done(req_id if isinstance(req_id, str) else None)

    def _spawn(self, sid: str, req_id: str, coro: Any) -> None:
        """Run a reply as a task owned by ``sid``."""
        task = asyncio.ensure_future(coro)
        self._tasks.setdefault(sid, set()).add(task)
        task.add_done_callback(lambda t: self._reply_done(sid, req_id, t))

    def _reply_done(self, sid: str, req_id: str, task: asyncio.Task[Any]) -> None:
        self._tasks.get(sid, set()).discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("reply %s failed", req_id, exc_info=task.exception())
        self._recorder.mark_done(req_id)
