"""Model names, bot uids, and turning chat messages into one prompt."""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

from ._exceptions import InvalidTextError, UnsupportedModelError
from ._wording import Wording

__all__ = [
    "models",
    "http_models",
    "openapi_models",
    "format_prompt",
    "resolve_model",
    "resolve_http_model",
    "resolve_openapi_model",
    "openapi_input",
    "check_settings",
    "check_text",
    "validate_messages",
    "SETTINGS",
]

#: Model name -> 32-hex bot uid of the WebSocket API (PROTOCOL.md section 5).
models: Mapping[str, str] = types.MappingProxyType(
    {
        "samantha": "1e3be7fe89e94a809408b1154a2ee3e1",
        "gpt-3.5-turbo": "8077335db7cd47e29f7de486612cc7fd",
        "gpt-4": "01c8de4fbfc548df903712b0922a4e01",
    }
)

#: Model name -> numeric bot id of the HTTP API. Only bot 4738 is known from
#: captures (a general assistant, PROTOCOL.md section 5); which of the WebSocket
#: model names it runs is not known, so any other bot needs its numeric id.
http_models: Mapping[str, str] = types.MappingProxyType({"assistant": "4738"})

#: Model name -> widget id of the key-based API (PROTOCOL.md section 8.1).
openapi_models: Mapping[str, str] = types.MappingProxyType(
    {
        "gpt-3.5-turbo": "1744214024104448000",
        "gpt-4o": "1744214024104448199",
        "gpt-4o-mini": "1744218088699597788",
        "gpt-4-turbo": "1744214047475109888",
        "claude-3.5-sonnet": "1744218088699596812",
    }
)

#: Generation settings and the type each takes; only the key-based API sends them.
SETTINGS: Mapping[str, type] = types.MappingProxyType(
    {"temperature": float, "top_p": float, "max_tokens": int, "presence_penalty": float, "frequency_penalty": float}
)

DEFAULT_MODEL = "samantha"
DEFAULT_OPENAPI_MODEL = "gpt-4o-mini"
_WIDGET_ID = re.compile(r"[0-9]{1,20}\Z")
DEFAULT_HTTP_MODEL = "assistant"
_BOT_ID = re.compile(r"[0-9]{1,19}\Z")
_BOT_UID = re.compile(r"[0-9a-f]{32}\Z")
_ROLES = ("system", "user", "assistant")


def resolve_model(model: str | None) -> str:
    """The bot uid for ``model``: a known name, a 32-hex uid, or empty/None."""
    if model is None or model == "":
        return models[DEFAULT_MODEL]
    if isinstance(model, str):
        if model in models:
            return models[model]
        if _BOT_UID.match(model):
            return model
    raise UnsupportedModelError(model, models)


def resolve_http_model(model: str | None, extra: Mapping[str, str] | None = None) -> str:
    """The numeric bot id for ``model`` on the HTTP API (``extra`` maps more
    names to ids, e.g. the client's ``http_bot_ids``)."""
    if model is None or model == "":
        return http_models[DEFAULT_HTTP_MODEL]
    if isinstance(model, str):
        if extra and model in extra:
            return extra[model]
        if model in http_models:
            return http_models[model]
        if _BOT_ID.match(model):
            return model
        if model in models or _BOT_UID.match(model):
            raise UnsupportedModelError(
                model,
                http_models,
                hint=Wording(
                    'the HTTP API takes a bot\'s numeric id (e.g. "4738"), not a '
                    "WebSocket model name or 32-hex uid; no numeric id is known for this "
                    "one: {s.name_a_bot_id}"
                ),
            )
    raise UnsupportedModelError(model, http_models, hint="or pass a bot's numeric id")


def resolve_openapi_model(model: str | None) -> str:
    """The widget id for ``model`` on the key-based API: a name in
    ``openapi_models``, a numeric widget id, or empty/None for the default."""
    if model is None or model == "":
        return openapi_models[DEFAULT_OPENAPI_MODEL]
    if isinstance(model, str):
        if model in openapi_models:
            return openapi_models[model]
        if _WIDGET_ID.match(model):
            return model
    hint: str | Wording = "or pass a numeric widget id"
    if isinstance(model, str) and (model in models or model in http_models or _BOT_UID.match(model)):
        hint = Wording(
            "this is a name of the web app's chat API, which the key-based API ({s.transport_openapi}) "
            "does not serve; pick a name here, or pass a numeric widget id"
        )
    raise UnsupportedModelError(model, openapi_models, hint=hint)


def openapi_input(messages: Sequence[Mapping[str, str]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The widget's ``input`` object for ``messages`` (PROTOCOL.md section 8.1).

    System messages are joined into ``system_prompt``; the last message must
    be the user's and becomes ``user_prompt``; every earlier user/assistant
    turn goes into ``memory``, in order. ``settings`` are added as given.
    """
    validate_messages(messages)
    last = messages[-1]
    if last["role"] != "user":
        raise ValueError(
            f"the last message must be the user's, not {last['role']!r}: the key-based API answers a user turn"
        )
    system = [m["content"] for m in messages if m["role"] == "system"]
    memory = [{"role": m["role"], "content": m["content"]} for m in messages[:-1] if m["role"] != "system"]
    data: dict[str, Any] = {"user_prompt": last["content"], "memory": memory}
    if system:
        data["system_prompt"] = "\n\n".join(system)
    data.update(settings)
    return data


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The given generation settings (None values dropped), type-checked."""
    checked: dict[str, Any] = {}
    for name, value in settings.items():
        if value is None:
            continue
        kind = SETTINGS[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (kind is int and not isinstance(value, int))
        ):
            raise TypeError(f"{name} must be {'an int' if kind is int else 'a number'}, not {value!r}")
        checked[name] = value
    return checked


def validate_messages(messages: Any) -> None:
    """Raise TypeError/ValueError naming the first malformed message."""
    if messages.__class__ is list and messages:
        # The usual shape, checked without the abstract base classes' isinstance.
        for message in messages:
            if (
                message.__class__ is not dict
                or message.get("role") not in _ROLES
                or message.get("content").__class__ is not str
            ):
                break
        else:
            return
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, not {type(messages).__name__}"
        )
    if not messages:
        raise ValueError("messages must not be empty: give at least one user message")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"messages[{index}] must be a dict with 'role' and 'content', not {type(message).__name__}")
        role = message.get("role")
        if role not in _ROLES:
            raise ValueError(f"messages[{index}]['role'] is {role!r}; use one of {', '.join(_ROLES)}")
        content = message.get("content")
        if not isinstance(content, str):
            raise TypeError(f"messages[{index}]['content'] must be a str, not {type(content).__name__}")


def check_text(messages: Sequence[Mapping[str, str]]) -> None:
    """Raise ``InvalidTextError`` for the first content that is not valid
    Unicode (a lone surrogate: nothing on the wire can carry it)."""
    for index, message in enumerate(messages):
        content = message["content"]
        if content.isascii():
            continue
        try:
            content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidTextError(
                f"messages[{index}]['content'] is not valid Unicode text: it holds a lone surrogate "
                f"({content[exc.start]!a} at index {exc.start}), as undecodable bytes read with "
                'errors="surrogateescape" do; decode the input strictly, or with errors="replace"'
            ) from None


def format_prompt(messages: Sequence[Mapping[str, str]]) -> str:
    """One message gives its content; several give ``Role: content`` lines
    followed by ``\\nAssistant:`` (the convention gpt4free used)."""
    validate_messages(messages)
    return format_valid_prompt(messages)


def format_valid_prompt(messages: Sequence[Mapping[str, str]]) -> str:
    """``format_prompt`` of messages that ``validate_messages`` passed already."""
    if len(messages) == 1:
        return messages[0]["content"]
    lines = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
    return f"{lines}\nAssistant:"
