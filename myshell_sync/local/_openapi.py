"""The key-based side of the local MyShell server (PROTOCOL.md section 8).

``LocalMyshellServer`` serves this route on the same port as its other sides:

``POST /public/v1/widget/run``
    Header ``x-myshell-openapi-key: <key>`` (one of ``api_keys``, default
    ``{LOCAL_API_KEY}``). JSON body ``{"widget_id": "<id>", "input": "<JSON
    text>"}``: ``widget_id`` a key of ``widgets`` (id -> model name, default
    ``DEFAULT_WIDGETS``), ``input`` the JSON text of an object with
    ``user_prompt`` (str) and optional ``system_prompt`` (str), ``memory``
    (list of ``{"role": "user"|"assistant", "content": str}``),
    ``temperature``, ``top_p``, ``presence_penalty``, ``frequency_penalty``
    (numbers) and ``max_tokens`` (int or null); any other field is refused.
    The answer is 200 ``{"success": true, "result": json.dumps(reply)}`` where
    ``reply = openapi_reply(model, user_prompt, len(memory),
    bool(system_prompt))``, whole (no streaming).

A widget run is checked in this order; the first that applies answers with a
JSON body ``{"success": false, "message"}``: ``openapi_status`` (that status
while ``openapi_status_times`` lasts; 429 carries ``Retry-After:
<openapi_retry_after>``); the key (401 ``invalid API key``); the body (400,
naming the field; ``unknown widget_id ...`` for an id not in ``widgets``);
``openapi_failure`` (200 with that message). Then ``openapi_malformed``
answers 200 with a body that is not the documented shape: ``"no-result"``
``{"success": true}``, ``"not-json"`` an HTML page, ``"result-not-json"`` a
``result`` that is not JSON text, ``"result-not-string"`` a ``result`` that
decodes to a number. ``openapi_delay`` holds every answer back that many
seconds; a client that leaves meanwhile is counted in ``openapi_cancelled``.

Every request is recorded in ``openapi_requests`` (refused ones too), and its
connection counted in ``http_connections``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ._aiohttp import Handlers, lower_headers, pause, read_json
from ._rules import openapi_reply, status_message, widget_run_check
from ._state import Recorder, ServerState

__all__ = ["API_KEY_HEADER", "OpenApi", "WIDGET_RUN_PATH"]

WIDGET_RUN_PATH = "/public/v1/widget/run"
API_KEY_HEADER = "x-myshell-openapi-key"
NOT_JSON_HTML = "<html><body><h1>502 Bad Gateway</h1> (simulated)</body></html>"


def _failure(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A ``{"success": false, "message"}`` answer."""
    return web.json_response({"success": False, "message": message}, status=status, headers=headers)


class OpenApi:
    """The widget-run route of one server, recording into its state.

    Everything but ``__init__`` runs on the server's loop thread.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._recorder = Recorder(state)
        self._delayed = Handlers()

    def attach(self, app: web.Application) -> None:
        """Add the route to a new app (called on every server start)."""
        self._delayed.reset()
        app.router.add_post(WIDGET_RUN_PATH, self.widget_run)

    async def close(self) -> None:
        """Cancel every widget run waiting out ``openapi_delay`` (server shutdown)."""
        await self._delayed.cancel_all()

    async def widget_run(self, request: web.Request) -> web.Response:
        """Answer one widget run, after ``openapi_delay``."""
        self._recorder.count_connection(request.transport)
        body = await read_json(request)
        data, problem = widget_run_check(body, self._state.widgets)
        self._recorder.record_openapi_request(lower_headers(request), body, data)
        response = self._answer(request, body, data, problem)
        delay = self._state.openapi_delay
        if delay > 0:
            await self._wait(request, delay)
        return response

    def _answer(self, request: web.Request, body: Any, data: Any, problem: str | None) -> web.Response:
        """The response the switches and the request call for."""
        state = self._state
        status = self._recorder.take_openapi_status()
        if status is not None:
            retry_after = state.openapi_retry_after
            headers = {"Retry-After": retry_after} if status == 429 and retry_after is not None else None
            return _failure(status, status_message(status), headers)
        if request.headers.get(API_KEY_HEADER) not in state.api_keys:
            return _failure(401, "invalid API key")
        if problem is not None:
            return _failure(400, problem)
        if state.openapi_failure is not None:
            return _failure(200, state.openapi_failure)
        memory = data.get("memory", [])
        reply = openapi_reply(
            state.widgets[body["widget_id"]], data["user_prompt"], len(memory), bool(data.get("system_prompt"))
        )
        malformed = state.openapi_malformed
        if malformed == "not-json":
            return web.Response(text=NOT_JSON_HTML, content_type="text/html")
        if malformed == "no-result":
            return web.json_response({"success": True})
        result = json.dumps(reply)
        if malformed == "result-not-json":
            result = "{not json: " + result
        elif malformed == "result-not-string":
            result = "42"
        return web.json_response({"success": True, "result": result})

    async def _wait(self, request: web.Request, seconds: float) -> None:
        """Wait ``seconds``; count the run cancelled if the client leaves meanwhile."""
        try:
            with self._delayed.running():
                await pause(request, seconds)
        except ConnectionResetError:
            self._recorder.count_openapi_cancelled()
        except asyncio.CancelledError:
            if not self._delayed.closing:
                self._recorder.count_openapi_cancelled()
            raise
