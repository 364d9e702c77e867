"""Who the client is on the wire, and what the server says about the account.

Both are shared by a client's transports and their threads, and kept apart
from the client object so those threads never hold the client alive.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

log = logging.getLogger("myshell_sync")


class Identity:
    """The account token, visitor id and user agent.

    A ``refreshed-auth-token`` from the server replaces the token. ``repr``
    never shows the token.
    """

    def __init__(self, token: Optional[str], visitor_id: str, user_agent: str) -> None:
        self.token = token
        self.visitor_id = visitor_id
        self.user_agent = user_agent

    def refresh(self, token: str) -> None:
        log.info("the server refreshed the account token")
        self.token = token

    def __repr__(self) -> str:
        token = "***" if self.token else None
        return f"<Identity visitor_id={self.visitor_id} token={token}>"


class AccountEvents:
    """Account-level events (no ``reqId``), such as ``energy_info``."""

    def __init__(self) -> None:
        self.energy_info: Optional[Any] = None

    def __call__(self, event: str, payload: Any) -> None:
        if event == "energy_info":
            self.energy_info = payload.get("data") if isinstance(payload, dict) else payload
        else:
            log.debug("ignored account-level event %s", event)
