"""A local MyShell chat server (python-socketio on aiohttp) for offline use and tests.

Needs the ``local`` extra; the client itself never imports this package.
"""

try:
    import aiohttp  # noqa: F401
    import socketio  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'the local server needs its extra: pip install ".[local]" in a clone of myshell_sync'
    ) from exc

from ._rules import (DEFAULT_BOTS, DEFAULT_HTTP_BOTS, DEFAULT_WIDGETS, LOCAL_API_KEY,
                     MALFORMED_KINDS, openapi_reply, reply_chunks)
from ._server import LocalMyshellServer

__all__ = ["DEFAULT_BOTS", "DEFAULT_HTTP_BOTS", "DEFAULT_WIDGETS", "LOCAL_API_KEY",
           "LocalMyshellServer", "MALFORMED_KINDS", "openapi_reply", "reply_chunks"]
