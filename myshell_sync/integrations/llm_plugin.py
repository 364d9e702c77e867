"""A plugin for simonw's ``llm``: MyShell models in ``llm`` and its Python API.

Installed with ``pip install "myshell_sync[llm]"``: the ``llm`` entry point
names this module, so ``llm plugins`` lists it and ``llm models`` shows:

- ``myshell/<name>``: the WebSocket chat API (``gpt-4``, ``gpt-3.5-turbo``, ``samantha``);
- ``myshell-http/<name>``: the web app's HTTP API (``assistant``);
- ``myshell-openapi/<name>``: the key-based API (``gpt-4o``, ``gpt-4o-mini``, ...),
  the only one with options (``-o temperature 0.2``, ``top_p``, ``max_tokens``,
  ``presence_penalty``, ``frequency_penalty``).

A name that only one other transport has is also an alias under
``myshell/`` (``myshell/gpt-4o`` is ``myshell-openapi/gpt-4o``); a name two
transports share (``gpt-3.5-turbo``) has no alias.

Keys: ``llm keys set myshell`` stores an account token (optional: without
one the web app's APIs are used as a visitor; else ``$MYSHELL_TOKEN``);
``llm keys set myshell-openapi`` stores the key-based API's key (else
``$MYSHELL_API_KEY``). ``--key`` overrides both.

Where the servers are: ``$MYSHELL_BASE_URL`` (the web app's API) and
``$MYSHELL_OPENAPI_URL`` (the key-based API); ``$MYSHELL_CAPTCHA_DELAY``
sets the seconds the WebSocket transport waits after connecting.

History: ``llm chat`` and ``llm -c`` send the previous turns with each
prompt (the system prompt, then the user and assistant turns), as
``myshell_sync.Conversation`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

try:
    import llm
    from llm.parts import TextPart
    from pydantic import Field
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        'the llm plugin needs llm 0.33 or later (Python 3.10+): pip install "myshell_sync[llm]"'
    ) from _missing

from .. import Myshell
from . import PREFIXES
from ._common import SETTINGS, ClientCache, client_options, model_names

__all__ = ["MyshellModel", "MyshellKeyApiModel", "register_models", "close_clients", "TOKEN_KEY", "API_KEY_KEY"]

#: The ``llm keys`` name of an account token (web app's APIs).
TOKEN_KEY = "myshell"
#: The ``llm keys`` name of a key-based API key.
API_KEY_KEY = "myshell-openapi"

_clients = ClientCache()


def close_clients() -> None:
    """Close the clients the models share (new ones are made on next use)."""
    _clients.close()


class MyshellModel(llm.KeyModel):
    """A MyShell bot on the WebSocket or HTTP transport (a token is optional)."""

    can_stream = True
    needs_key = TOKEN_KEY
    key_env_var = "MYSHELL_TOKEN"

    def __init__(self, transport: str, name: str) -> None:
        self.transport = transport
        self.name = name
        self.model_id = f"{PREFIXES[transport]}/{name}"

    def get_key(self, explicit_key: str | None = None) -> str | None:
        try:
            return super().get_key(explicit_key)
        except llm.NeedsKeyException:
            return None  # no token: the web app's APIs answer visitors too

    def client(self, key: str | None) -> Myshell:
        """The shared client for this model's transport, key and environment."""
        return _clients.get(**client_options(self.transport, credential=key))

    def execute(
        self,
        prompt: llm.Prompt,
        stream: bool,
        response: llm.Response,
        conversation: llm.Conversation | None,
        key: str | None = None,
    ) -> Iterator[str]:
        client = self.client(key)
        messages = _messages(prompt)
        settings = _settings(prompt.options)
        with client.stream(self.name, messages, **settings) as reply:
            if stream:
                yield from reply
            else:
                text = "".join(reply)
                if text:
                    yield text
        response.response_json = {"req_id": reply.req_id, "transport": self.transport}

    def __repr__(self) -> str:
        return f"<MyshellModel {self.model_id}>"


class _SettingsOptions(llm.Options):
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature, 0 to 2")
    top_p: float | None = Field(default=None, ge=0, le=1, description="Nucleus sampling: the top_p mass of tokens")
    max_tokens: int | None = Field(default=None, ge=1, description="The most tokens the reply may have")
    presence_penalty: float | None = Field(
        default=None, ge=-2, le=2, description="Penalty for tokens already present, -2 to 2"
    )
    frequency_penalty: float | None = Field(
        default=None, ge=-2, le=2, description="Penalty by how often a token was used, -2 to 2"
    )


class MyshellKeyApiModel(MyshellModel):
    """A model of the key-based API: needs an API key, takes the generation settings."""

    needs_key = API_KEY_KEY
    key_env_var = "MYSHELL_API_KEY"
    Options = _SettingsOptions  # type: ignore[assignment]

    def get_key(self, explicit_key: str | None = None) -> str | None:
        return llm.KeyModel.get_key(self, explicit_key)  # required: NeedsKeyException says how to set it

    def __repr__(self) -> str:
        return f"<MyshellKeyApiModel {self.model_id}>"


def _settings(options: Any) -> dict[str, Any]:
    return {name: getattr(options, name) for name in SETTINGS if getattr(options, name, None) is not None}


def _messages(prompt: llm.Prompt) -> list[dict[str, str]]:
    """The whole chain ``llm`` built for this turn (``prompt.messages``:
    system, earlier turns, this one) as ``{"role", "content"}`` dicts."""
    messages = []
    for message in prompt.messages:
        if message.role not in ("system", "user", "assistant"):
            raise llm.ModelError(f"MyShell models take system, user and assistant messages, not {message.role!r}")
        text = "".join(part.text for part in message.parts if isinstance(part, TextPart))
        if message.role == "assistant" and not text:
            continue  # a turn with no text (nothing MyShell can be shown)
        messages.append({"role": message.role, "content": text})
    if not messages or messages[-1]["role"] != "user":
        raise llm.ModelError("MyShell models answer a user message: give a prompt")
    return messages


def _aliases(transport: str, name: str) -> list[str]:
    """``myshell/<name>`` for a model of another transport when only that transport has ``name``."""
    if transport == "websocket":
        return []
    owners = [other for other in PREFIXES if name in model_names(other)]
    return [f"{PREFIXES['websocket']}/{name}"] if owners == [transport] else []


@llm.hookimpl
def register_models(register: Any) -> None:
    for transport in PREFIXES:
        kind = MyshellKeyApiModel if transport == "openapi" else MyshellModel
        for name in model_names(transport):
            register(kind(transport, name), aliases=_aliases(transport, name))
