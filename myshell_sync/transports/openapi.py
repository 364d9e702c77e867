"""The key-based API: ``POST /public/v1/widget/run`` on ``openapi.myshell.ai``.

MyShell's route for programs (PROTOCOL.md section 8): an API key in
``x-myshell-openapi-key``, no visitor id, signature, captcha or browser. The
body is ``{"widget_id": ..., "input": <a JSON document as a string>}``; the
answer ``{"success": true, "result": <JSON text of the reply string>}``
arrives whole, so the mailbox gets one ``text_stream`` and the end. Errors:
401/403 ``AuthenticationError``, 429 ``RateLimitError`` (retried with
``Retry-After`` while ``max_retries`` and ``Timeout.total`` allow), 5xx and
``success: false`` ``ServerError``, any other shape ``ProtocolError``.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

import requests

from .._constants import OPENAPI_KEY_HEADER, OPENAPI_RUN_PATH
from .._deadline import Deadline
from .._exceptions import AuthenticationError, ProtocolError, ServerError
from .._models import openapi_input, openapi_models, resolve_openapi_model
from .._wording import Wording
from ._http_errors import BODY_EXCERPT, retry_after, status_error
from ._requests_adapter import close_quietly
from ._session import SessionHolder
from ._threaded import ThreadedReply, ThreadedTransport
from .base import Request

__all__ = ["OpenApiTransport"]

# Longest Retry-After honoured between two attempts (seconds).
_MAX_RETRY_AFTER = 60.0
# Largest answer read (bytes): the reply arrives whole.
_MAX_ANSWER = 16 * 1024 * 1024


class OpenApiTransport(ThreadedTransport):
    """Runs chat widgets with an API key, one thread per reply."""

    name = "openapi"
    supports_settings = True

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Callable[[], str | None],
        headers: Callable[[], dict[str, str]],
        sessions: SessionHolder,
        closed: threading.Event,
        max_retries: int,
        backoff: Callable[[int], float],
    ) -> None:
        """``api_key()`` and ``headers()`` are read at each request (the key
        is a secret: it is never kept in an error or a log line)."""
        super().__init__(
            base_url + OPENAPI_RUN_PATH, sessions=sessions, closed=closed, max_retries=max_retries, backoff=backoff
        )
        self._api_key = api_key
        self._extra_headers = headers

    def check_model(self, model: str | None) -> str:
        return resolve_openapi_model(model)

    def model_names(self) -> tuple[str, ...]:
        return tuple(openapi_models)

    def make_reply(self, request: Request, deadline: Deadline) -> _WidgetRun:
        if not self._api_key():
            raise AuthenticationError(
                Wording("{s.transport_openapi} needs an API key: pass {s.api_key} or set MYSHELL_API_KEY")
            )
        # ``input`` is a JSON document sent as a string (double encoding).
        data = json.dumps(openapi_input(request.messages, request.settings), ensure_ascii=False)
        return _WidgetRun(self, request, {"widget_id": self.check_model(request.model), "input": data}, deadline)

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(self._extra_headers())
        headers[OPENAPI_KEY_HEADER] = self._api_key() or ""
        return headers

    def secrets(self) -> tuple[str | None, ...]:
        return (self._api_key(),)


class _WidgetRun(ThreadedReply):
    """One widget run: the whole answer, then the end."""

    _transport: OpenApiTransport

    def __init__(self, transport: OpenApiTransport, request: Request, body: dict[str, str], deadline: Deadline) -> None:
        super().__init__(transport, request, deadline)
        self._body = body

    def exchange(self) -> None:
        response = self.post(self._body, self._transport.headers, stream=False, retry_after=_retry_delay)
        if response is None:
            return
        try:
            reply = self._reply(response)
        finally:
            close_quietly(response)
        self.put([("text_stream", (reply, False)), ("message_replied", {"data": {"text": reply}})])

    def _reply(self, response: requests.Response) -> str:
        secrets = self._transport.secrets()
        req_id = self._request.req_id
        if response.status_code in (401, 403):
            error = status_error(response, req_id, secrets=secrets)
            raise AuthenticationError(
                Wording(
                    "HTTP {status}: the key-based API refused the API key; check {s.api_key} (or MYSHELL_API_KEY)",
                    {"status": response.status_code},
                ),
                req_id=req_id,
                status_code=error.status_code,
                body=error.body,
            )
        if response.status_code >= 300:
            raise status_error(response, req_id, secrets=secrets)
        text = response.content[:_MAX_ANSWER].decode("utf-8", "replace")
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        try:
            answer = json.loads(text)
        except ValueError:
            raise ProtocolError(
                f"the key-based API answered with a body that is not JSON: {text[:80]!r}",
                status_code=response.status_code,
                body=text[:BODY_EXCERPT],
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
            raise self._malformed(text, "no boolean 'success'")
        if not answer["success"]:
            raise ServerError(
                f"the key-based API failed: {_message(answer)}; retry later",
                req_id=req_id,
                status_code=response.status_code,
                body=text[:BODY_EXCERPT],
            )
        result = answer.get("result")
        if not isinstance(result, str):
            raise self._malformed(text, "no string 'result'")
        try:
            reply = json.loads(result)
        except ValueError:
            raise self._malformed(text, "'result' is not JSON") from None
        if not isinstance(reply, str):
            raise self._malformed(text, "'result' is not a JSON string")
        return reply

    def _malformed(self, text: str, what: str) -> ProtocolError:
        return ProtocolError(
            f"the key-based API answered {what}: {text[:80]!r}", req_id=self._request.req_id, body=text[:BODY_EXCERPT]
        )


def _retry_delay(response: requests.Response) -> float | None:
    """A 429 is retried after its ``Retry-After`` (capped), or 1 s."""
    if response.status_code != 429:
        return None
    hint = retry_after(response.headers.get("Retry-After"))
    return min(1.0 if hint is None else hint, _MAX_RETRY_AFTER)


def _message(answer: dict[str, Any]) -> str:
    for key in ("message", "error", "msg"):
        value = answer.get(key)
        if isinstance(value, str) and value:
            return value
    return "no message from the server"
