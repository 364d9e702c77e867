"""The HTTP side of the local MyShell server (PROTOCOL.md sections 2 and 3).

``LocalMyshellServer`` serves these routes on the same port as its Socket.IO
endpoint (and over TLS too when it has an ``ssl_context``):

``POST /v1/bot/chat/send_message``
    JSON ``{botId, conversation_scenario?, message, messageType: 1}``. Bots
    are addressed by numeric id strings (``http_bots``: id -> name). The
    answer is a ``text/event-stream`` body, written chunk by chunk as it is
    produced; each event is ``id: <uuid>``, ``event: <name>`` and one ``data:``
    line holding the JSON envelope of PROTOCOL.md 2.2. The events, names
    shortened from ``MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_<X>``:
    ``USER_SENT_MESSAGE_CREATED`` (``message`` = the user's MessageDto),
    ``USER_SENT_MESSAGE_REPLYING`` (``message`` = the reply placeholder), one
    ``TEXT`` per chunk of ``reply_chunks(name, message)`` (``content`` = the
    chunk), ``TEXT_STREAM_PUSH_FINISHED`` (``content`` ""),
    ``USER_SENT_MESSAGE_REPLIED`` (``message`` with the full text and status
    ``DONE``), then ``USER_CONSUMED_ENERGY`` (``userEnergyInfo``) when an
    energy budget is set, then the end of the body.

``GET /user/getUserEnergyInfo``
    With ``Authorization: Bearer <token>``: ``{"energy", "dailyEnergy"}``.
    Without a bearer, or with one not in ``tokens`` (when set): 401.

A send_message is checked in this order, and the first failing check answers
with a JSON body ``{"reason", "message", "code"}`` instead of a stream:
``http_status`` (every request gets that status: 403 is a Cloudflare
challenge page with ``cf-mitigated: challenge``, 429 carries ``Retry-After:
<http_retry_after>``); header ``myshell-service-name: organics-api`` (400);
header ``timestamp``, if sent, valid under check digit variant B (400
``ERROR_REASON_INVALID_TIMESTAMP``); ``tokens`` (401 unless ``Authorization:
Bearer <token>`` names one); the body (400); ``botId`` (400
``ERROR_REASON_BOT_NOT_FOUND``); ``captcha_window`` (400
``ERROR_REASON_CHAT_NEED_VERIFY_CAPTCHA``: over HTTP it counts from the
server's start, since there is no connect); ``energy`` (400
``ERROR_REASON_USER_NOT_ENOUGH_ENERGY`` once the shared budget is spent).
The reasons not seen in PROTOCOL.md 2.4 (``..._INVALID_SERVICE_NAME``,
``..._INVALID_TIMESTAMP``, ``..._UNAUTHORIZED``, ``..._INVALID_REQUEST``,
``..._BOT_NOT_FOUND``, ``..._TOO_MANY_REQUESTS``) are this server's own.

Switches that shape a stream (read once per request): ``error_event`` /
``error_after`` (an in-stream ``ERROR`` event after N chunks, with
``status: {"message"}`` and ``errorReason``, then the end of the body),
``chunk_delay``, ``reply_delay``, ``drop_after`` (abort the TCP connection
once exactly N chunks are flushed), ``missing_replied`` (end the body after
``TEXT_STREAM_PUSH_FINISHED``), ``truncate_utf8`` (after the chunks, end the
body in the middle of a multi-byte character). ``refreshed_token`` adds the
response header ``refreshed-auth-token`` to every response of both routes.

The server records every send_message in ``http_requests`` and counts
``open_http_streams`` and ``http_cancelled`` (streams that ended because the
client went away: a write failed, the connection closed during a delay, or
the handler was cancelled). Both routes count their connections in
``http_connections``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from typing import Any

from aiohttp import web

from .._sse import encode_sse
from ._aiohttp import Handlers, client_gone, lower_headers, pause, read_json
from ._rules import (
    DROP,
    ERROR,
    ERROR_EVENTS,
    ERROR_REASONS,
    STATUS_ERRORS,
    Plan,
    reply_chunks,
    send_message_problem,
    valid_timestamp,
)
from ._state import Recorder, ServerState

__all__ = ["ENERGY_PATH", "HttpApi", "SEND_MESSAGE_PATH"]

SEND_MESSAGE_PATH = "/v1/bot/chat/send_message"
ENERGY_PATH = "/user/getUserEnergyInfo"
SERVICE_NAME = "organics-api"  # the header value that marks the Go API
EVENT_PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"
DAILY_ENERGY = 200  # reported as dailyEnergy (and as energy when unlimited)
FLUSH_TIMEOUT = 1.0  # seconds drop_after waits for the TCP buffer to drain
CHALLENGE_HTML = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head>'
    "<body><noscript>Enable JavaScript and cookies to continue</noscript>"
    "<!-- simulated Cloudflare challenge --></body></html>"
)
_TRUNCATED_CHAR = "\u2026"  # 3 bytes in UTF-8; truncate_utf8 sends only the first

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Dropped(Exception):
    """drop_after aborted the connection; the body must not be ended."""


def _envelope(**fields: Any) -> dict[str, Any]:
    """The data object every SSE event carries (PROTOCOL.md 2.2)."""
    data: dict[str, Any] = {
        "content": "",
        "voiceBytes": "",
        "voiceBytesIndex": 0,
        "errorReason": "ERROR_REASON_UNSPECIFIED",
        "status": None,
        "voiceFilePath": "",
        "message": None,
        "audioFileDurationSeconds": 0,
        "userEnergyInfo": None,
        "imageGenMessageResponse": None,
    }
    data.update(fields)
    return data


def _sse_bytes(name: str, **fields: Any) -> bytes:
    """One complete event named ``EVENT_PREFIX + name``."""
    data = _dumps(_envelope(**fields))
    return encode_sse(data, event=EVENT_PREFIX + name, id=str(uuid.uuid4())).encode()


def _error_response(status: int, reason: str, message: str, headers: dict[str, str]) -> web.Response:
    body = {"reason": reason, "message": message, "code": status}
    return web.json_response(body, status=status, headers=headers)


def _bearer(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _flush(transport: asyncio.BaseTransport) -> None:
    """Wait until the transport's write buffer is empty (or FLUSH_TIMEOUT)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLUSH_TIMEOUT
    size = getattr(transport, "get_write_buffer_size", lambda: 0)
    while size() and loop.time() < deadline:
        await asyncio.sleep(0.005)


class HttpApi:
    """The send_message and energy routes of one server, recording into its state.

    Everything but ``__init__`` runs on the server's loop thread.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._recorder = Recorder(state)
        self._ids = itertools.count(1)
        self._streams = Handlers()
        self._started_at = 0.0

    def attach(self, app: web.Application) -> None:
        """Add the routes to a new app (called on every server start)."""
        self._streams.reset()
        self._started_at = time.monotonic()
        app.router.add_post(SEND_MESSAGE_PATH, self.send_message)
        app.router.add_get(ENERGY_PATH, self.energy_info)

    async def close_streams(self) -> None:
        """Cancel every streaming send_message (server shutdown)."""
        await self._streams.cancel_all()

    # ------------------------------------------------------------------
    # Routes

    async def send_message(self, request: web.Request) -> web.StreamResponse:
        """Answer one send_message: an error response, or the SSE stream."""
        self._recorder.count_connection(request.transport)
        body = await read_json(request)
        self._recorder.record_http_request(lower_headers(request), body)
        refusal = self._refusal(request, body)
        if refusal is not None:
            return refusal
        return await self._stream(request, body, self._recorder.plan())

    async def energy_info(self, request: web.Request) -> web.Response:
        """``GET /user/getUserEnergyInfo``: the account's energy, by bearer."""
        self._recorder.count_connection(request.transport)
        token = _bearer(request)
        tokens = self._state.tokens
        if token is None or (tokens is not None and token not in tokens):
            return _error_response(401, "ERROR_REASON_UNAUTHORIZED", "login required", self._headers())
        return web.json_response(self._energy_info(), headers=self._headers())

    # ------------------------------------------------------------------
    # Checks

    def _refusal(self, request: web.Request, body: Any) -> web.Response | None:
        """Return the response refusing this request, or None to stream."""
        state = self._state
        headers = self._headers()
        status = state.http_status
        if status is not None:
            return self._status_response(status, headers)
        if request.headers.get("myshell-service-name") != SERVICE_NAME:
            return _error_response(
                400, "ERROR_REASON_INVALID_SERVICE_NAME", f"myshell-service-name must be {SERVICE_NAME}", headers
            )
        stamp = request.headers.get("timestamp")
        if stamp is not None and not valid_timestamp(stamp):
            return _error_response(400, "ERROR_REASON_INVALID_TIMESTAMP", "invalid timestamp", headers)
        tokens = state.tokens
        if tokens is not None and _bearer(request) not in tokens:
            return _error_response(401, "ERROR_REASON_UNAUTHORIZED", "login required", headers)
        problem = send_message_problem(body)
        if problem is not None:
            return _error_response(400, "ERROR_REASON_INVALID_REQUEST", problem, headers)
        if body["botId"] not in state.http_bots:
            return _error_response(400, "ERROR_REASON_BOT_NOT_FOUND", "bot not found", headers)
        if time.monotonic() - self._started_at < state.captcha_window:
            return _error_response(400, "ERROR_REASON_CHAT_NEED_VERIFY_CAPTCHA", "need verify captcha", headers)
        if state.error_event is None and not self._recorder.take_energy():
            return _error_response(400, "ERROR_REASON_USER_NOT_ENOUGH_ENERGY", "no enough energy", headers)
        return None

    def _status_response(self, status: int, headers: dict[str, str]) -> web.Response:
        """The answer ``http_status`` forces on every send_message."""
        if status == 403:
            headers["cf-mitigated"] = "challenge"
            return web.Response(status=403, text=CHALLENGE_HTML, content_type="text/html", headers=headers)
        retry_after = self._state.http_retry_after
        if status == 429 and retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        reason, message = STATUS_ERRORS.get(status, ("ERROR_REASON_UNSPECIFIED", f"HTTP {status} (simulated)"))
        return _error_response(status, reason, message, headers)

    # ------------------------------------------------------------------
    # The stream

    async def _stream(self, request: web.Request, body: dict[str, Any], plan: Plan) -> web.StreamResponse:
        """Stream the reply; keep the open/cancelled counters right."""
        response = web.StreamResponse(headers=self._headers())
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        response.headers["Cache-Control"] = "no-cache"
        response.enable_chunked_encoding()
        self._recorder.count_http_stream(opened=1)
        client_left = False
        try:
            with self._streams.running():
                await response.prepare(request)
                await self._reply(request, response, body, plan)
                await response.write_eof()
        except _Dropped:
            pass
        except ConnectionError:  # aiohttp's ClientConnectionResetError too
            client_left = True
        except asyncio.CancelledError:
            client_left = not self._streams.closing
            raise
        finally:
            self._recorder.count_http_stream(opened=-1, cancelled=int(client_left))
        return response

    async def _reply(
        self, request: web.Request, response: web.StreamResponse, body: dict[str, Any], plan: Plan
    ) -> None:
        """Write the events of one reply, or stop where a switch says."""
        bot_id, text = body["botId"], body["message"]
        user = self._message("TEXT", bot_id, text, "DONE")
        await self._send(request, response, "USER_SENT_MESSAGE_CREATED", message=user)
        placeholder = self._message("REPLY", bot_id, "", "PROCESSING", reply_to=user)
        await self._send(request, response, "USER_SENT_MESSAGE_REPLYING", message=placeholder)
        chunks = reply_chunks(self._state.http_bots.get(bot_id, bot_id), text)
        await pause(request, plan.reply_delay)
        for index, chunk in enumerate(chunks):
            if await self._interrupted(request, response, plan, index):
                return
            if index:
                await pause(request, plan.chunk_delay)
            await self._send(request, response, "TEXT", content=chunk)
        if await self._interrupted(request, response, plan, len(chunks), last=True):
            return
        if plan.truncate_utf8:
            event = _sse_bytes("TEXT", content=_TRUNCATED_CHAR)
            cut = event.index(_TRUNCATED_CHAR.encode()) + 1
            await response.write(event[:cut])
            return
        await self._send(request, response, "TEXT_STREAM_PUSH_FINISHED", content="")
        if plan.missing_replied:
            return
        final = dict(placeholder, text="".join(chunks), status="DONE")
        await self._send(request, response, "USER_SENT_MESSAGE_REPLIED", message=final)
        if plan.report_energy:
            await self._send(request, response, "USER_CONSUMED_ENERGY", userEnergyInfo=self._energy_info())

    async def _interrupted(
        self, request: web.Request, response: web.StreamResponse, plan: Plan, sent: int, last: bool = False
    ) -> bool:
        """Drop the connection or send the ERROR event once ``sent`` chunks are out."""
        cut = plan.cut_at(sent, last)
        if cut == DROP:
            transport = request.transport
            if transport is not None:
                await _flush(transport)
                transport.abort()
            raise _Dropped
        if cut == ERROR:
            assert plan.error_event is not None
            await self._send(
                request,
                response,
                "ERROR",
                errorReason=ERROR_REASONS[plan.error_event],
                status={"message": ERROR_EVENTS[plan.error_event]},
            )
        return cut is not None

    async def _send(self, request: web.Request, response: web.StreamResponse, name: str, **fields: Any) -> None:
        if client_gone(request):
            raise ConnectionResetError("the client went away")
        await response.write(_sse_bytes(name, **fields))

    # ------------------------------------------------------------------
    # Helpers

    def _headers(self) -> dict[str, str]:
        """Headers every response of the HTTP API carries."""
        headers = {"X-Request-Id": uuid.uuid4().hex}
        token = self._state.refreshed_token
        if token is not None:
            headers["refreshed-auth-token"] = token
        return headers

    def _energy_info(self) -> dict[str, int]:
        energy = self._state.energy
        return {"energy": DAILY_ENERGY if energy is None else energy, "dailyEnergy": DAILY_ENERGY}

    def _message(
        self, kind: str, bot_id: str, text: str | None, status: str, reply_to: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A Go-API-era MessageDto (string ids, unix-ms dates)."""
        now = str(time.time_ns() // 1_000_000)
        return {
            "id": str(next(self._ids)),
            "uid": uuid.uuid4().hex,
            "type": kind,
            "botId": bot_id,
            "text": text,
            "status": status,
            "replyId": reply_to["id"] if reply_to else "",
            "replyUid": reply_to["uid"] if reply_to else "",
            "createdDateUnix": now,
            "updatedDateUnix": now,
        }
