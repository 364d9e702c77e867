"""Error messages that name the caller's settings without spelling them.

An error that says what to change names each setting as a field of ``s``:
``Wording("{detail}; pass {s.token} or set MYSHELL_TOKEN", {"detail": ...})``.
Everything else in the message is a parameter (never part of the template,
so a brace in a URL or a server's message is harmless). The error's text,
``str(error)``, is the wording rendered with ``PYTHON`` (``token=``); the
command line renders the same wording with its own ``Terms`` (``--token``),
so each front end speaks its own language without rewriting strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["PYTHON", "Terms", "Wording"]


@dataclass(frozen=True)
class Terms:
    """How one front end spells each setting an error may tell the caller to change.

    Every field is needed (a new one makes every front end spell it).
    """

    token: str  # "pass {s.token} or set MYSHELL_TOKEN", "log in with {s.token}"
    the_token: str  # "check {s.the_token} (or MYSHELL_TOKEN)"
    api_key: str  # "pass {s.api_key} or set MYSHELL_API_KEY"
    base_url: str  # "check {s.base_url}"
    captcha_delay: str  # "keep {s.captcha_delay} at its default"
    transport_http: str  # "try {s.transport_http}"
    transport_openapi: str  # "the key-based API ({s.transport_openapi})"
    proxy_with_credentials: str  # "use {s.proxy_with_credentials}"
    check_verify: str  # "TLS failed ...; {s.check_verify}"
    name_a_bot_id: str  # a WebSocket model name on the HTTP API: what to pass instead
    model_given: str  # "unsupported model {model!r}{s.model_given}": how the model was given
    max_connections: str  # "all busy with this bot ({s.max_connections})"
    energy_call: str  # "{s.energy_call} needs a logged-in account"
    timeout_connect: str  # the Timeout fields: "ran out of {s.timeout_connect}"
    timeout_first_chunk: str
    timeout_idle: str
    timeout_total: str


#: The library's own spelling: Python arguments.
PYTHON = Terms(
    token="token=",
    the_token="the token",
    api_key="api_key=",
    base_url="base_url",
    captcha_delay="captcha_delay",
    transport_http='transport="http"',
    transport_openapi='transport="openapi"',
    proxy_with_credentials='proxy="http://user:pass@host:port"',
    check_verify="check verify=",
    name_a_bot_id="pass the id, or map the name with Myshell(http_bot_ids={...})",
    model_given="",
    max_connections="raise max_connections",
    energy_call="energy()",
    timeout_connect="Timeout.connect",
    timeout_first_chunk="Timeout.first_chunk",
    timeout_idle="Timeout.idle",
    timeout_total="Timeout.total",
)


class Wording(NamedTuple):
    """A message template (``str.format`` syntax; ``{s.<term>}`` names a
    setting) and its parameters."""

    template: str
    params: Mapping[str, Any] = {}

    def render(self, terms: Terms = PYTHON) -> str:
        return self.template.format_map({**self.params, "s": terms})

    def extended(self, template: str, **params: Any) -> Wording:
        """This wording with ``template`` appended (and its parameters added)."""
        return Wording(self.template + template, {**self.params, **params})
