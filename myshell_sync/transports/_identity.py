"""Who the client is on the wire, and what the server says about the account.

Both are shared by a client's transports and their threads, and kept apart
from the client object so those threads never hold the client alive.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("myshell_sync")


class Identity:
    """The account token, API key, visitor ids, user agent and extra headers.

    A ``refreshed-auth-token`` from the server replaces the token. ``repr``
    never shows a secret (token, API key, security token, headers).
    """

    def __init__(
        self,
        token: str | None,
        visitor_id: str,
        user_agent: str,
        *,
        api_key: str | None = None,
        http_visitor_id: str | None = None,
        security_token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.token = token
        self.visitor_id = visitor_id
        self.user_agent = user_agent
        self.api_key = api_key
        #: The HTTP API's ``visitor-id``: a UUID v4, as the current web app
        #: sends, unless the caller chose one.
        self.http_visitor_id = http_visitor_id or str(uuid.uuid4())
        self.security_token = security_token
        self.headers: dict[str, str] = dict(headers or {})

    def refresh(self, token: str) -> None:
        log.info("the server refreshed the account token")
        self.token = token

    def __repr__(self) -> str:
        token = "***" if self.token else None
        api_key = "***" if self.api_key else None
        return f"<Identity visitor_id={self.visitor_id} token={token} api_key={api_key}>"


class AccountEvents:
    """Account-level events (no ``reqId``), such as ``energy_info``."""

    def __init__(self) -> None:
        self.energy_info: Any | None = None

    def __call__(self, event: str, payload: Any) -> None:
        if event == "energy_info":
            self.energy_info = payload.get("data") if isinstance(payload, dict) else payload
        else:
            log.debug("ignored account-level event %s", event)
