"""``OpenAI``: the chat completions API of the official OpenAI SDK, in process.

Built on the public ``Myshell`` client only, so it works on every transport.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from .. import Myshell, Stream, UnsupportedModelError
from .._stop import StopScanner
from ._objects import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
    Model,
    ModelList,
)
from ._translate import (
    SETTINGS,
    CompletionRequest,
    estimate_prompt_tokens,
    estimate_tokens,
    parse_request,
)

__all__ = ["OpenAI", "ChunkStream"]

_new = object.__new__

#: MyShell reports no reason: a reply that ends is complete (no transport says it was cut).
FINISH_REASON = "stop"


class OpenAI:
    """``client.chat.completions.create(...)`` and ``client.models.list()`` as in
    the official ``openai`` package, answered by MyShell.

    ``OpenAI(client)`` wraps a ``Myshell`` (left open by ``close()``);
    ``OpenAI(**options)`` creates one from ``Myshell``'s options and closes it.
    """

    def __init__(self, client: Myshell | None = None, **myshell_options: Any) -> None:
        if client is not None and myshell_options:
            raise TypeError("pass a Myshell client or Myshell's options, not both")
        if client is not None and not isinstance(client, Myshell):
            raise TypeError(f"client must be a myshell_sync.Myshell, not {type(client).__name__}")
        self._owns_client = client is None
        self.client: Myshell = client if client is not None else Myshell(**myshell_options)
        self.created = int(time.time())
        self.chat = _Chat(self)
        self.models = _Models(self)

    def close(self) -> None:
        """Close the ``Myshell`` client if this object created it."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> OpenAI:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<OpenAI over {self.client!r}>"


class _Chat:
    def __init__(self, owner: OpenAI) -> None:
        self.completions = _Completions(owner)


class _Completions:
    def __init__(self, owner: OpenAI) -> None:
        self._owner = owner

    def create(
        self,
        *,
        model: str,
        messages: list[Any],
        stream: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        stop: str | list[str] | None = None,
        n: int | None = None,
        user: str | None = None,
        stream_options: Any | None = None,
        timeout: Any = None,
        **ignored: Any,
    ) -> ChatCompletion | ChunkStream:
        """A chat completion; with ``stream=True`` a :class:`ChunkStream`.

        Errors before the reply starts (a bad request, an unknown model, a
        refused connection) raise here; later ones raise while iterating. All
        are ``MyshellError`` subclasses. Generation settings reach MyShell on
        the key-based API only; elsewhere they are ignored (logged at DEBUG).
        ``timeout`` (seconds or a ``Timeout``) replaces the client's; None keeps it.
        """
        client = self._owner.client
        local = locals()
        request = parse_request(
            model=model,
            messages=messages,
            stream=stream,
            n=n,
            stop=stop,
            stream_options=stream_options,
            supports_settings=client.supports_settings,
            settings={name: local[name] for name in SETTINGS},
            ignored={"user": user, **ignored},
            timeout=timeout,
        )
        chunks = ChunkStream(client, request)
        chunks.start()
        if request.stream:
            return chunks
        with chunks:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        return ChatCompletion(
            id=chunks.id,
            created=chunks.created,
            model=request.model,
            choices=[Choice(index=0, message=ChatCompletionMessage(content=text), finish_reason=FINISH_REASON)],
            usage=chunks.usage(),
        )


class ChunkStream:
    """The ``ChatCompletionChunk``s of one streaming completion.

    Iterate it; ``close()`` (or leaving a ``with`` block) cancels the reply
    upstream, from any thread. The first chunk's delta carries
    ``role="assistant"``; the last has ``finish_reason="stop"``; with
    ``stream_options={"include_usage": True}`` one more chunk follows, with
    empty ``choices`` and the (estimated) ``usage``.
    """

    def __init__(self, client: Myshell, request: CompletionRequest) -> None:
        self.request = request
        self.created = int(time.time())
        options = dict(request.settings)
        if request.timeout is not None:
            options["timeout"] = request.timeout
        self._stream: Stream = client.stream(request.model, request.messages, **options)
        self.id = f"chatcmpl-{self._stream.req_id.replace('-', '')}"
        self._scanner = StopScanner(request.stop)
        self._first: str | None = None
        self._sent: list[str] = []  # with stop strings: the text passed on, in pieces
        self._started = False
        self._lock = threading.Lock()
        self._iterator = self._chunks()

    def start(self) -> None:
        """Wait for the reply's first piece, so that an error before any text raises now."""
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            self._first = next(self._stream)
        except StopIteration:
            self._first = None

    def usage(self) -> CompletionUsage:
        """The estimated token counts of the request and of what was passed on so far."""
        prompt = estimate_prompt_tokens(self.request.messages)
        completion = estimate_tokens(self.response_text)
        return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def _chunk(self, delta: ChoiceDelta, finish_reason: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.request.model,
            choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)],
        )

    def _texts(self) -> Iterator[str]:
        if self._first is not None:
            yield self._first
        yield from self._stream

    def _content_chunk(self, text: str) -> ChatCompletionChunk:
        """``self._chunk(ChoiceDelta(content=text))``, built without the
        dataclasses' ``__init__`` (the same fields and values): one per reply chunk."""
        delta = _new(ChoiceDelta)
        delta.content = text
        delta.role = delta.refusal = None
        choice = _new(ChunkChoice)
        choice.index = 0
        choice.delta = delta
        choice.finish_reason = choice.logprobs = None
        chunk = _new(ChatCompletionChunk)
        chunk.id = self.id
        chunk.created = self.created
        chunk.model = self.request.model
        chunk.choices = [choice]
        chunk.usage = chunk.system_fingerprint = None
        chunk.object = "chat.completion.chunk"
        return chunk

    def _chunks(self) -> Generator[ChatCompletionChunk, None, None]:
        self.start()
        yield self._chunk(ChoiceDelta(role="assistant", content=""))
        sent = self._sent
        scanner = self._scanner
        content_chunk = self._content_chunk
        if not scanner.stops:  # nothing to look for: every piece is passed on as it is
            for text in self._texts():
                yield content_chunk(text)  # (never empty)
        else:
            for text in self._texts():
                passed = scanner.feed(text)
                if passed:
                    sent.append(passed)
                    yield content_chunk(passed)
                if scanner.stopped:
                    self._stream.close()  # the rest of the reply is not wanted: cancel it upstream
                    break
            rest = scanner.flush()
            if rest:
                sent.append(rest)
                yield content_chunk(rest)
        yield self._chunk(ChoiceDelta(), FINISH_REASON)
        if self.request.include_usage:
            yield ChatCompletionChunk(
                id=self.id, created=self.created, model=self.request.model, choices=[], usage=self.usage()
            )

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        # The generator itself (as the openai SDK's Stream gives one): a for
        # loop then runs it without a Python-level __next__ call per chunk.
        return self._iterator

    def __next__(self) -> ChatCompletionChunk:
        return next(self._iterator)

    def close(self) -> None:
        """Stop now and cancel the reply upstream; idempotent, from any thread."""
        self._stream.close()
        try:
            self._iterator.close()
        except ValueError:  # running in another thread: it ends on the cancel
            pass

    @property
    def response_text(self) -> str:
        """The text passed on so far."""
        if not self._scanner.stops:  # every piece the stream received is passed on
            return self._stream.text
        return "".join(self._sent)

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ChunkStream id={self.id} model={self.request.model!r}>"


class _Models:
    def __init__(self, owner: OpenAI) -> None:
        self._owner = owner

    def list(self) -> ModelList:
        """The model names the client's transport knows."""
        return ModelList(data=[self._model(name) for name in self._owner.client.model_names])

    def retrieve(self, model: str) -> Model:
        """One of :meth:`list`'s models; ``UnsupportedModelError`` for any other name."""
        names = self._owner.client.model_names
        if model not in names:
            raise UnsupportedModelError(model, names, hint="see models.list()")
        return self._model(model)

    def _model(self, name: str) -> Model:
        return Model(id=name, created=self._owner.created)
