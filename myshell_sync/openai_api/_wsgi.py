"""``create_app``: OpenAI's HTTP API as a WSGI application, answered by MyShell.

Routes: ``POST /v1/chat/completions`` (JSON, or server-sent events with
``"stream": true``), ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health``. Errors have OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``. Any WSGI server runs it;
``myshell-sync serve`` runs it under waitress.
"""

from __future__ import annotations

import hmac
import json
import json.encoder
import logging
import os
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Callable

from .. import Myshell
from .. import _exceptions as errors
from .._web import safe_message
from ._client import ChunkStream, OpenAI

__all__ = ["create_app", "API_KEYS_ENV", "DEFAULT_MAX_BODY"]

log = logging.getLogger("myshell_sync")

#: Comma-separated keys the server accepts when ``api_keys`` is not given.
API_KEYS_ENV = "MYSHELL_SYNC_API_KEYS"
DEFAULT_MAX_BODY = 1024 * 1024

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]

#: Body fields passed to ``create()`` as named parameters; the rest go as ``**ignored``.
_NOT_FROM_BODY = ("timeout",)


class _HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.headers = headers or []


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}


def _status(code: int) -> str:
    return f"{code} {_REASONS[code]}"


def http_error(error: BaseException) -> _HTTPError:
    """The response for ``error``: the status and OpenAI's error object."""
    if isinstance(error, _HTTPError):
        return error
    if isinstance(error, errors.UnsupportedModelError):
        return _HTTPError(404, str(error), "invalid_request_error", param="model", code="model_not_found")
    if isinstance(error, errors.RequestTooLargeError):
        return _HTTPError(413, str(error), "invalid_request_error", code="request_too_large")
    if isinstance(error, errors.InvalidRequestError):
        return _HTTPError(400, str(error), "invalid_request_error", param=error.param)
    if isinstance(error, (TypeError, ValueError)) and not isinstance(error, errors.MyshellError):
        return _HTTPError(400, str(error), "invalid_request_error")
    if isinstance(error, errors.RateLimitError):
        headers = [] if error.retry_after is None else [("Retry-After", str(max(0, round(error.retry_after))))]
        return _HTTPError(429, safe_message(error), "rate_limit_error", code="rate_limit_exceeded", headers=headers)
    if isinstance(error, errors.InsufficientEnergyError):
        return _HTTPError(429, safe_message(error), "insufficient_quota", code="insufficient_quota")
    if isinstance(error, errors.MyshellTimeoutError):
        return _HTTPError(504, safe_message(error), "timeout", code="upstream_timeout")
    if isinstance(error, errors.MyshellError):
        return _HTTPError(
            502, f"{safe_message(error)} ({type(error).__name__})", "upstream_error", code="upstream_error"
        )
    return _HTTPError(500, "internal server error", "server_error")


def _keys(api_keys: Sequence[str] | None) -> tuple[bytes, ...]:
    if api_keys is None:
        api_keys = [key.strip() for key in os.environ.get(API_KEYS_ENV, "").split(",") if key.strip()]
    if isinstance(api_keys, str):
        raise TypeError("api_keys must be a list of keys, not one string")
    return tuple(key.encode() for key in api_keys)


class _App:
    def __init__(self, client: Myshell | OpenAI, api_keys: Sequence[str] | None, max_body: int) -> None:
        self.openai = client if isinstance(client, OpenAI) else OpenAI(client)
        self.keys = _keys(api_keys)
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self.route(environ, start_response)
        except Exception as exc:  # every failure becomes an OpenAI-shaped response
            error = http_error(exc)
            if error.status == 500:
                log.exception("openai_api: internal error on %s", environ.get("PATH_INFO"))
            else:
                log.info("openai_api: %s on %s: %s", error.status, environ.get("PATH_INFO"), type(exc).__name__)
            return _json(start_response, error.status, error.body, error.headers)

    def route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/health":
            _allow(method, "GET")
            return _json(start_response, 200, {"status": "ok"})
        if not path.startswith("/v1/"):
            raise _HTTPError(
                404, f"no route {path}: the API is under /v1/", "invalid_request_error", code="unknown_url"
            )
        self.authenticate(environ)
        if path == "/v1/chat/completions":
            _allow(method, "POST")
            return self.completions(self.body(environ), start_response)
        if path == "/v1/models":
            _allow(method, "GET")
            return _json(start_response, 200, self.openai.models.list().model_dump())
        if path.startswith("/v1/models/"):
            _allow(method, "GET")
            return _json(start_response, 200, self.openai.models.retrieve(path[len("/v1/models/") :]).model_dump())
        raise _HTTPError(404, f"no route {path}", "invalid_request_error", code="unknown_url")

    def authenticate(self, environ: Mapping[str, Any]) -> None:
        if not self.keys:
            return
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, given = header.partition(" ")
        token = given.strip().encode() if scheme.lower() == "bearer" else b""
        # compare with every key, so the time taken does not tell which key is close
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(token, key)
        if not matched:
            raise _HTTPError(
                401,
                "invalid or missing API key: send Authorization: Bearer <key>",
                "invalid_request_error",
                code="invalid_api_key",
            )

    def body(self, environ: Mapping[str, Any]) -> dict[str, Any]:
        length_header = environ.get("CONTENT_LENGTH") or ""
        try:
            length = int(length_header) if length_header else None
        except ValueError:
            raise _HTTPError(400, "bad Content-Length", "invalid_request_error") from None
        if length is not None and length > self.max_body:
            raise _HTTPError(
                413,
                f"the body is {length} bytes; the limit is {self.max_body}",
                "invalid_request_error",
                code="request_too_large",
            )
        stream = environ["wsgi.input"]
        raw = stream.read(length) if length is not None else stream.read(self.max_body + 1)
        if len(raw) > self.max_body:
            raise _HTTPError(
                413,
                f"the body is over the limit of {self.max_body} bytes",
                "invalid_request_error",
                code="request_too_large",
            )
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _HTTPError(400, "the body is not valid JSON", "invalid_request_error") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "the body must be a JSON object", "invalid_request_error")
        return body

    def completions(self, body: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        arguments = {str(key): value for key, value in body.items() if key not in _NOT_FROM_BODY}
        if "model" not in arguments or "messages" not in arguments:
            missing = "model" if "model" not in arguments else "messages"
            raise _HTTPError(400, f"{missing} is required", "invalid_request_error", param=missing)
        result = self.openai.chat.completions.create(**arguments)
        if not isinstance(result, ChunkStream):
            return _json(start_response, 200, result.model_dump())
        start_response(
            _status(200),
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache"),
                ("X-Accel-Buffering", "no"),
            ],
        )
        return _EventStream(result)


class _EventStream:
    """The SSE body: ``data: {chunk}`` events, then ``data: [DONE]``. A failure
    after the stream began is one ``data: {"error": ...}`` event before ``[DONE]``.
    ``close()`` (the WSGI server calls it, also when the client went away)
    cancels the reply upstream."""

    def __init__(self, chunks: ChunkStream) -> None:
        self.chunks = chunks
        self._events = self._generate()

    def _generate(self) -> Generator[bytes, None, None]:
        try:
            encode = _ContentEncoder(self.chunks)
            for chunk in self.chunks:
                yield encode(chunk)
        except Exception as exc:  # the status is sent: report it in the stream
            error = http_error(exc)
            log.info("openai_api: the stream failed after it began: %s", type(exc).__name__)
            yield f"data: {json.dumps(error.body)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        self.chunks.close()
        self._events.close()


class _ContentEncoder:
    """``data: {chunk.to_json()}`` for each chunk; a chunk that carries only
    content (every piece of a reply) as the stream's constant JSON around the
    encoded text, once the first one was checked equal to ``to_json()``."""

    def __init__(self, chunks: ChunkStream) -> None:
        request = chunks.request
        self._head = 'data: {"id":%s,"created":%s,"model":%s,"choices":[{"index":0,"delta":{"content":' % (
            _json_str(chunks.id),
            json.dumps(chunks.created),
            _json_str(request.model),
        )
        self._tail = '}}],"object":"chat.completion.chunk"}\n\n'
        self._checked: bool | None = None

    def __call__(self, chunk: Any) -> bytes:
        choices = chunk.choices
        if (
            self._checked is not False
            and len(choices) == 1
            and chunk.usage is None
            and chunk.system_fingerprint is None
        ):
            choice = choices[0]
            delta = choice.delta
            content = delta.content
            if (
                content.__class__ is str
                and delta.role is None
                and delta.refusal is None
                and choice.index == 0
                and choice.finish_reason is None
                and choice.logprobs is None
            ):
                fast = self._head + _json_str(content) + self._tail
                if self._checked is None:
                    self._checked = fast == f"data: {chunk.to_json()}\n\n"
                if self._checked:
                    return fast.encode()
        return f"data: {chunk.to_json()}\n\n".encode()


_json_str = json.encoder.encode_basestring  # a JSON string, not ASCII-only


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _HTTPError(405, f"use {allowed}", "invalid_request_error", code="method_not_allowed")


def _json(start_response: StartResponse, status: int, body: Any, headers: Headers | None = None) -> list[bytes]:
    data = json.dumps(body, ensure_ascii=False).encode()
    start_response(
        _status(status),
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *(headers or []),
        ],
    )
    return [data]


def create_app(
    client: Myshell | OpenAI,
    *,
    api_keys: Sequence[str] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application serving OpenAI's API from ``client`` (not closed by it).

    ``api_keys``: the bearer keys accepted on ``/v1/*`` (default: the
    comma-separated ``MYSHELL_SYNC_API_KEYS``; none means no check).
    ``max_body``: the largest request body in bytes (larger ones get 413).
    """
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValueError(f"max_body must be a positive number of bytes, not {max_body!r}")
    return _App(client, api_keys, max_body)
