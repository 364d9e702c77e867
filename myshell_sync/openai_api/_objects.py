"""Response objects in the shape of OpenAI's chat completions API.

Plain dataclasses (slotted on Python 3.10+): attribute access, ``model_dump()`` / ``to_dict()`` (with
``exclude_none=True``, the JSON the server sends) and ``to_json()``. Their dumps
validate as the official ``openai.types`` models (the tests check it).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionUsage",
    "Model",
    "ModelList",
]


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_none(item) for item in value]
    return value


# Slots where the Python has them (3.10+): a chunk is made for every piece of
# a reply, and slotted objects are made in half the time. (mypy is shown the
# decorator it knows, so it checks the constructors' keywords.)
if TYPE_CHECKING:
    from dataclasses import dataclass as _dataclass
else:
    _dataclass = dataclasses.dataclass(slots=True) if sys.version_info >= (3, 10) else dataclasses.dataclass


class _Dumpable:
    __slots__ = ()

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """This object as plain dicts and lists (a new copy each call)."""
        data: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        if exclude_none:
            data = _drop_none(data)
        return data

    def to_dict(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """The same as :meth:`model_dump`."""
        return self.model_dump(exclude_none=exclude_none)

    def to_json(self, *, exclude_none: bool = True) -> str:
        """Compact JSON, as the server sends it (``None`` fields left out)."""
        return json.dumps(self.model_dump(exclude_none=exclude_none), ensure_ascii=False, separators=(",", ":"))


@_dataclass
class CompletionUsage(_Dumpable):
    """Token counts. They are estimates: MyShell reports none (see ``estimate_tokens``)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@_dataclass
class ChatCompletionMessage(_Dumpable):
    content: str | None
    role: str = "assistant"
    refusal: str | None = None


@_dataclass
class Choice(_Dumpable):
    index: int
    message: ChatCompletionMessage
    finish_reason: str
    logprobs: None = None


@_dataclass
class ChatCompletion(_Dumpable):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None
    object: str = "chat.completion"
    system_fingerprint: str | None = None


@_dataclass
class ChoiceDelta(_Dumpable):
    content: str | None = None
    role: str | None = None
    refusal: str | None = None


@_dataclass
class ChunkChoice(_Dumpable):
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: None = None


@_dataclass
class ChatCompletionChunk(_Dumpable):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None


@_dataclass
class Model(_Dumpable):
    id: str
    created: int
    owned_by: str = "myshell"
    object: str = "model"


@_dataclass
class ModelList(_Dumpable):
    """What ``models.list()`` returns: iterate it, or read ``data``."""

    data: list[Model]
    object: str = "list"

    def __iter__(self) -> Iterator[Model]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
