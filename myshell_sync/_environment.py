"""Settings read from the environment by the layers on top of the client
(the OpenAI-compatible server's ``wsgi`` module, the integrations). The
client itself reads only ``MYSHELL_TOKEN`` and ``MYSHELL_API_KEY``."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["BASE_URL_ENV", "OPENAPI_URL_ENV", "CAPTCHA_DELAY_ENV", "TRANSPORT_ENV", "captcha_delay_from_env"]

#: The base URL of the web app's API (WebSocket and HTTP transports).
BASE_URL_ENV = "MYSHELL_BASE_URL"
#: The base URL of the key-based API (``transport="openapi"``), for the integrations.
OPENAPI_URL_ENV = "MYSHELL_OPENAPI_URL"
#: Seconds the WebSocket transport waits after connecting (``captcha_delay``).
CAPTCHA_DELAY_ENV = "MYSHELL_CAPTCHA_DELAY"
#: The transport of the OpenAI-compatible server's ``wsgi`` module.
TRANSPORT_ENV = "MYSHELL_TRANSPORT"


def captcha_delay_from_env(environ: Mapping[str, str] | None = None) -> float | None:
    """``$MYSHELL_CAPTCHA_DELAY`` as seconds (None if unset or empty)."""
    value = (os.environ if environ is None else environ).get(CAPTCHA_DELAY_ENV)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{CAPTCHA_DELAY_ENV} must be a number of seconds, not {value!r}") from None
