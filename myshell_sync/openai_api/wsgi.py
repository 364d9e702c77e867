"""``app``: the OpenAI-compatible API for any WSGI server, configured by the environment.

    gunicorn -w 4 -k gthread --threads 16 -b 127.0.0.1:8000 myshell_sync.openai_api.wsgi:app

Each worker imports this module and so makes its own ``Myshell`` (one per
process, shared by its threads). The client reads ``MYSHELL_TOKEN`` and
``MYSHELL_API_KEY`` itself; this module adds ``MYSHELL_BASE_URL``,
``MYSHELL_TRANSPORT`` and ``MYSHELL_CAPTCHA_DELAY``; the server's own keys
are ``MYSHELL_SYNC_API_KEYS`` (comma-separated; unset: no check).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .. import Myshell
from .._environment import BASE_URL_ENV, TRANSPORT_ENV, captcha_delay_from_env
from ._wsgi import create_app

__all__ = ["app", "client_options_from_env"]


def client_options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``Myshell`` options from ``MYSHELL_BASE_URL``, ``MYSHELL_TRANSPORT`` and ``MYSHELL_CAPTCHA_DELAY``."""
    environ = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    if environ.get(BASE_URL_ENV):
        options["base_url"] = environ[BASE_URL_ENV]
    if environ.get(TRANSPORT_ENV):
        options["transport"] = environ[TRANSPORT_ENV]
    captcha_delay = captcha_delay_from_env(environ)
    if captcha_delay is not None:
        options["captcha_delay"] = captcha_delay
    return options


#: The WSGI application; its client is this process's and lives as long as it.
app = create_app(Myshell(**client_options_from_env()))
