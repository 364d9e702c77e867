"""``ChatMyShell``: MyShell as a LangChain chat model (``langchain-core``).

::

    from myshell_sync.integrations.langchain import ChatMyShell

    model = ChatMyShell(model="gpt-4")                       # the WebSocket transport
    model = ChatMyShell(model="gpt-4o", transport="openapi")  # the key-based API ($MYSHELL_API_KEY)
    print(model.invoke("Hi").content)
    for chunk in model.stream("Hi"):
        print(chunk.content, end="")

Install with ``pip install "myshell_sync[langchain]"``. One ``Myshell``
client is made on first use and shared by every call and thread (``.batch``
runs its calls in threads); ``close()`` closes it, or pass your own with
``client=``. Errors are the ``myshell_sync`` ones, typed. Stop strings
(``stop=``) are applied on the client side: the reply is cut there and the
rest is cancelled upstream.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Optional

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.utils.utils import secret_from_env
    from pydantic import ConfigDict, Field, PrivateAttr, SecretStr
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        'ChatMyShell needs langchain-core 1.0 or later (Python 3.10+): pip install "myshell_sync[langchain]"'
    ) from _missing

from .. import Myshell, Stream
from ._common import SETTINGS, client_options, stop_list, stopped_text

__all__ = ["ChatMyShell"]

_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant", "system": "system"}
#: Call keywords LangChain itself may pass that mean nothing to MyShell.
_IGNORED = frozenset({"stream"})


class ChatMyShell(BaseChatModel):
    """A MyShell bot as a LangChain chat model, on any transport.

    ``model`` is a model name of the transport (``gpt-4`` on the WebSocket,
    ``assistant`` on HTTP, ``gpt-4o-mini`` on the key-based API) or a bot id.
    ``transport`` is ``"websocket"``, ``"http"``, ``"openapi"`` or ``"auto"``;
    left out, it is ``"openapi"`` when an API key is set, else ``"websocket"``.
    ``token`` (``$MYSHELL_TOKEN``) and ``api_key`` (``$MYSHELL_API_KEY``) are
    kept as ``SecretStr``. ``base_url`` defaults to ``$MYSHELL_BASE_URL``
    (``$MYSHELL_OPENAPI_URL`` on the key-based API), then the public service.
    The generation settings are sent by the key-based API only; set on any
    other transport, a call raises ``ValueError``.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model: Optional[str] = Field(default=None, alias="model_name")
    transport: Optional[Literal["websocket", "http", "openapi", "auto"]] = None
    token: Optional[SecretStr] = Field(default_factory=secret_from_env("MYSHELL_TOKEN", default=None))
    api_key: Optional[SecretStr] = Field(default_factory=secret_from_env("MYSHELL_API_KEY", default=None))
    base_url: Optional[str] = None
    captcha_delay: Optional[float] = None
    timeout: Optional[float] = None
    max_retries: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    max_tokens: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    streaming: bool = False
    """Whether ``invoke`` streams (so callbacks see each token)."""
    client: Optional[Myshell] = Field(default=None, exclude=True)
    """A client to use (left open by ``close()``); None: one is made on first use."""

    _own_client: Optional[Myshell] = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- LangChain's contract ----------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "myshell"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "transport": self.resolved_transport}
        params.update({name: getattr(self, name) for name in SETTINGS if getattr(self, name) is not None})
        return params

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"token": "MYSHELL_TOKEN", "api_key": "MYSHELL_API_KEY"}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        stream = self._start(messages, kwargs)
        pieces = stopped_text(stream, stop_list(stop))
        try:
            text = "".join(pieces)
        finally:
            pieces.close()
        message = AIMessage(content=text, response_metadata=self._metadata(stream))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stream = self._start(messages, kwargs)
        pieces = stopped_text(stream, stop_list(stop))
        try:
            for piece in pieces:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager is not None:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            pieces.close()  # also when the caller stops early: the reply is cancelled upstream
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", response_metadata=self._metadata(stream), chunk_position="last")
        )

    # -- the client ----------------------------------------------------------------

    @property
    def resolved_transport(self) -> str:
        """The transport calls use (``transport``, or what leaving it out means)."""
        if self.transport is not None:
            return self.transport
        return "openapi" if self.api_key is not None and self.api_key.get_secret_value() else "websocket"

    def get_client(self) -> Myshell:
        """The ``Myshell`` client calls use: ``client``, or the one this model
        made on first use (shared by every thread)."""
        if self.client is not None:
            return self.client
        with self._lock:
            if self._own_client is None or self._own_client.closed:
                transport = self.resolved_transport
                secret = self.api_key if transport == "openapi" else self.token
                self._own_client = Myshell(
                    **client_options(
                        transport,
                        credential=secret.get_secret_value() if secret is not None else None,
                        base_url=self.base_url,
                        captcha_delay=self.captcha_delay,
                        timeout=self.timeout,
                        max_retries=self.max_retries,
                    )
                )
            return self._own_client

    def close(self) -> None:
        """Close the client this model made (not one passed as ``client=``)."""
        with self._lock:
            client, self._own_client = self._own_client, None
        if client is not None:
            client.close()

    def __enter__(self) -> ChatMyShell:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- one call ------------------------------------------------------------------

    def _start(self, messages: list[BaseMessage], kwargs: Mapping[str, Any]) -> Stream:
        unknown = sorted(set(kwargs) - set(SETTINGS) - {"model"} - _IGNORED)
        if unknown:
            raise TypeError(f"ChatMyShell does not take {', '.join(unknown)}; it takes {', '.join(SETTINGS)}")
        settings = {name: getattr(self, name) for name in SETTINGS}
        settings.update({name: kwargs[name] for name in SETTINGS if name in kwargs})
        settings = {name: value for name, value in settings.items() if value is not None}
        model = kwargs.get("model", self.model)
        return self.get_client().stream(model, [_message(m) for m in messages], **settings)

    def _metadata(self, stream: Stream) -> dict[str, Any]:
        return {
            "model_name": self.model,
            "model_provider": "myshell",
            "transport": self.resolved_transport,
            "req_id": stream.req_id,
            "finish_reason": "stop",
        }


def _message(message: BaseMessage) -> dict[str, str]:
    """A LangChain message as MyShell's ``{"role", "content"}``."""
    kind = message.role if isinstance(message, ChatMessage) else message.type
    role = _ROLES.get(kind)
    if role is None:
        raise ValueError(f"MyShell takes system, human and AI messages, not {kind!r} ({type(message).__name__})")
    content = message.content
    if isinstance(content, str):
        return {"role": role, "content": content}
    texts = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            texts.append(block.get("text", ""))
        else:
            block_kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"MyShell takes text only, not a {block_kind!r} content block")
    return {"role": role, "content": "".join(texts)}
