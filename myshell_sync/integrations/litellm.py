"""``MyshellLLM``: MyShell as a litellm custom provider.

Register it once (``pip install "myshell_sync[litellm]"``), then call litellm
as for any provider::

    import litellm
    from myshell_sync.integrations.litellm import MyshellLLM

    litellm.custom_provider_map = [{"provider": "myshell", "custom_handler": MyshellLLM()}]
    for chunk in litellm.completion(model="myshell/gpt-4", messages=[...], stream=True):
        print(chunk.choices[0].delta.content or "", end="")

``register()`` does the same for every transport without dropping other
custom providers: ``myshell/<name>`` (WebSocket), ``myshell-http/<name>``
and ``myshell-openapi/<name>`` (the key-based API).

``api_key=`` is the account token on the web app's APIs and the API key on
the key-based API (else ``$MYSHELL_TOKEN`` / ``$MYSHELL_API_KEY``);
``api_base=`` is the server (else ``$MYSHELL_BASE_URL`` /
``$MYSHELL_OPENAPI_URL``, then the public service). The generation
settings reach MyShell on the key-based API only and are ignored elsewhere
(logged at DEBUG); ``stop`` is applied on the client side.

Errors: litellm maps every provider's errors to its own exception classes
(``litellm.RateLimitError``, ``litellm.AuthenticationError``, ...). The
``myshell_sync`` error is kept in that chain, typed: ``myshell_error(exc)``
returns it. The async calls (``litellm.acompletion``) run the same
synchronous calls in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

try:
    import litellm
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        'MyshellLLM needs litellm 1.60 or later (Python 3.10+): pip install "myshell_sync[litellm]"'
    ) from _missing

if TYPE_CHECKING:
    from litellm.types.utils import GenericStreamingChunk

from .. import (
    AuthenticationError,
    BadRequestError,
    CaptchaRequiredError,
    InsufficientEnergyError,
    Myshell,
    MyshellConnectionError,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    RateLimitError,
    ServerError,
    Stream,
    Timeout,
    UnsupportedModelError,
)
from . import PREFIXES
from ._common import SETTINGS, TRANSPORTS, ClientCache, client_options, stop_list, stopped_text

__all__ = ["MyshellLLM", "register", "myshell_error", "status_code_for"]

log = logging.getLogger("myshell_sync")

#: litellm's parameters that need MyShell to do what it cannot: refused (HTTP 400).
_REFUSED = ("tools", "functions")
#: Parameters litellm passes that are not the model's concern.
_PLUMBING = frozenset({"stream", "stream_options", "stop", "n", "max_completion_tokens"})


def status_code_for(error: BaseException) -> int:
    """The HTTP status litellm maps a ``myshell_sync`` error by (its own
    status when it came from one, else one that means the same)."""
    own = getattr(error, "status_code", None)
    if isinstance(error, AuthenticationError):
        return 401
    if isinstance(error, InsufficientEnergyError):
        return 402
    if isinstance(error, CaptchaRequiredError):
        return 403
    if isinstance(error, UnsupportedModelError):
        return 404
    if isinstance(error, MyshellTimeoutError):
        return 408
    if isinstance(error, RateLimitError):
        return 429
    if isinstance(error, BadRequestError):
        return own if isinstance(own, int) and 400 <= own < 500 else 400
    if isinstance(error, ServerError):
        return own if isinstance(own, int) and own >= 500 else 500
    if isinstance(error, ProtocolError):
        return 502
    if isinstance(error, MyshellConnectionError):
        return 503
    return 500


def _litellm_error(error: BaseException) -> CustomLLMError:
    """The error litellm's contract asks a custom handler to raise; raise it ``from error``."""
    return CustomLLMError(status_code=status_code_for(error), message=str(error))  # type: ignore[no-untyped-call]


def myshell_error(error: BaseException) -> MyshellError | None:
    """The ``myshell_sync`` error behind an exception litellm raised (or None)."""
    seen = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, MyshellError):
            return current
        todo += [current.__cause__, current.__context__, getattr(current, "original_exception", None)]
    return None


class MyshellLLM(CustomLLM):
    """The litellm handler for one transport; its clients are shared by
    every call and thread. ``myshell_options`` are ``Myshell``'s
    (``timeout``, ``captcha_delay``, ``base_url``, ``proxy``, ...)."""

    def __init__(self, transport: str = "websocket", **myshell_options: Any) -> None:
        super().__init__()
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.transport = transport
        self.options = dict(myshell_options)
        self._clients = ClientCache()

    def client(self, api_base: str | None = None, api_key: str | None = None) -> Myshell:
        """The shared client for this server and credential."""
        options = dict(self.options)
        base_url = options.pop("base_url", None)
        base_url = api_base or base_url
        return self._clients.get(
            **client_options(
                self.transport,
                credential=api_key,
                base_url=base_url,
                captcha_delay=options.pop("captcha_delay", None),
                **options,
            )
        )

    def close(self) -> None:
        """Close the clients (new ones are made on next use)."""
        self._clients.close()

    # -- litellm's contract ----------------------------------------------------------

    def completion(
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: Any,
        print_verbose: Any,
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: Any = None,
        timeout: Any = None,
        client: Any = None,
    ) -> Any:
        try:
            stream, stops = self._start(model, messages, api_base, api_key, optional_params, timeout)
            pieces = stopped_text(stream, stops)
            try:
                text = "".join(pieces)
            finally:
                pieces.close()
        except MyshellError as exc:
            raise _litellm_error(exc) from exc
        model_response.choices[0].message.content = text
        model_response.choices[0].finish_reason = "stop"
        model_response.model = model
        return model_response

    def streaming(
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: Any,
        print_verbose: Any,
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: Any = None,
        timeout: Any = None,
        client: Any = None,
    ) -> Iterator[GenericStreamingChunk]:
        return self._stream_chunks(model, messages, api_base, api_key, optional_params, timeout)[1]

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self.completion, *args, **kwargs)

    # litellm declares a coroutine and iterates an async generator (as its own handlers are).
    async def astreaming(  # type: ignore[override, misc]
        self,
        model: str,
        messages: list[Any],
        api_base: str | None,
        custom_prompt_dict: dict[str, Any],
        model_response: Any,
        print_verbose: Any,
        encoding: Any,
        api_key: str | None,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: Any = None,
        timeout: Any = None,
        client: Any = None,
    ) -> AsyncIterator[GenericStreamingChunk]:
        stream, chunks = await asyncio.to_thread(
            self._stream_chunks, model, messages, api_base, api_key, optional_params, timeout
        )
        done: Any = object()
        try:
            while True:
                chunk = await asyncio.to_thread(next, chunks, done)
                if chunk is done:
                    return
                yield chunk
        finally:
            stream.close()  # thread-safe: a worker still inside next() stops on it

    # -- one call ----------------------------------------------------------------------

    def _stream_chunks(
        self,
        model: str,
        messages: Sequence[Any],
        api_base: str | None,
        api_key: str | None,
        optional_params: Mapping[str, Any],
        timeout: Any,
    ) -> tuple[Stream, Iterator[GenericStreamingChunk]]:
        """Start the reply and wait for its first piece, so that an error
        before any text raises here (inside ``litellm.completion``)."""
        try:
            stream, stops = self._start(model, messages, api_base, api_key, optional_params, timeout)
            pieces = stopped_text(stream, stops)
            first = next(pieces, None)
        except MyshellError as exc:
            raise _litellm_error(exc) from exc
        return stream, _chunks(first, pieces)

    def _start(
        self,
        model: str,
        messages: Sequence[Any],
        api_base: str | None,
        api_key: str | None,
        optional_params: Mapping[str, Any],
        timeout: Any,
    ) -> tuple[Stream, list[str]]:
        params = dict(optional_params or {})
        for name in _REFUSED:
            if params.get(name):
                raise BadRequestError(f"{name}: MyShell bots take text and answer text; they call no tools")
        n = params.get("n")
        if n is not None and n != 1:
            raise BadRequestError(f"n={n!r}: MyShell gives one reply per request")
        if params.get("max_tokens") is None and params.get("max_completion_tokens") is not None:
            params["max_tokens"] = params["max_completion_tokens"]
        client = self.client(api_base, api_key)
        settings = {name: params[name] for name in SETTINGS if params.get(name) is not None}
        if settings and not client.supports_settings:
            log.debug(
                "litellm: %s ignored: transport=%s has no generation settings",
                ", ".join(sorted(settings)),
                self.transport,
            )
            settings = {}
        ignored = sorted(set(params) - set(SETTINGS) - _PLUMBING - set(_REFUSED))
        if ignored:
            log.debug("litellm: %s ignored: MyShell has no such parameter", ", ".join(ignored))
        options: dict[str, Any] = dict(settings)
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            current = client.timeout
            options["timeout"] = Timeout(
                connect=current.connect, first_chunk=current.first_chunk, idle=current.idle, total=float(timeout)
            )
        try:
            stops = stop_list(params.get("stop"))
            stream = client.stream(model or None, [_message(m) for m in messages], **options)
        except MyshellError:
            raise
        except (ValueError, TypeError) as exc:  # the request's own checks: a bad request
            raise BadRequestError(str(exc)) from exc
        return stream, stops


def _chunk(text: str, finished: bool = False) -> GenericStreamingChunk:
    """One piece of the reply, as litellm's custom handlers yield them."""
    return {
        "text": text,
        "is_finished": finished,
        "finish_reason": "stop" if finished else "",
        "usage": None,
        "index": 0,
        "tool_use": None,
    }


def _chunks(first: str | None, pieces: Generator[str, None, None]) -> Iterator[GenericStreamingChunk]:
    try:
        if first is not None:
            yield _chunk(first)
            for piece in pieces:
                yield _chunk(piece)
    except MyshellError as exc:
        raise _litellm_error(exc) from exc
    finally:
        pieces.close()  # also when the caller stops early: the reply is cancelled upstream
    yield _chunk("", finished=True)


def _message(message: Any) -> dict[str, str]:
    """An OpenAI-style message (a dict, or litellm's Message) as ``{"role", "content"}``."""
    get = message.get if isinstance(message, Mapping) else lambda name, default=None: getattr(message, name, default)
    role = get("role")
    if role == "developer":  # OpenAI's newer name for the system role
        role = "system"
    if role not in ("system", "user", "assistant"):
        raise BadRequestError(f"MyShell takes system, user and assistant messages, not {role!r}")
    if get("tool_calls") or get("function_call"):
        raise BadRequestError("MyShell bots call no tools: an assistant message with tool calls cannot be sent")
    content = get("content")
    if content is None:
        return {"role": role, "content": ""}
    if isinstance(content, str):
        return {"role": role, "content": content}
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind != "text":
            raise BadRequestError(f"MyShell takes text only, not a {kind!r} content part")
        texts.append(part.get("text") or "")
    return {"role": role, "content": "".join(texts)}


def register(transports: Sequence[str] = TRANSPORTS, **myshell_options: Any) -> dict[str, MyshellLLM]:
    """Add a handler per transport to ``litellm.custom_provider_map`` under
    its prefix (``myshell``, ``myshell-http``, ``myshell-openapi``), replacing
    (and closing) one registered before under that name; other custom
    providers stay. Returns the handlers by provider name."""
    handlers = {PREFIXES[transport]: MyshellLLM(transport, **myshell_options) for transport in transports}
    kept = []
    for item in litellm.custom_provider_map:
        if item.get("provider") in handlers:
            old = item.get("custom_handler")
            if isinstance(old, MyshellLLM):
                old.close()
        else:
            kept.append(item)
    litellm.custom_provider_map = kept + [
        {"provider": provider, "custom_handler": handler} for provider, handler in handlers.items()
    ]
    return handlers
