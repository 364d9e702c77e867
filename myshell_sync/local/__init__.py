"""A local MyShell chat server (python-socketio on aiohttp) for offline use and tests.

Needs the ``local`` extra; the client itself never imports this package.
Without the extra the package still imports (so ``python -m
myshell_sync.local`` can say what to install in one line), and using any of
its names raises ``ImportError`` with the install command.
"""

from typing import Any


class MissingExtraError(ImportError):
    """The ``local`` extra (python-socketio, aiohttp) is not installed; the
    message is one line saying what to install."""

    def __init__(
        self,
        message: str = 'the local server needs the "local" extra (python-socketio, aiohttp): '
        'pip install ".[local]" in a clone of myshell_sync',
    ) -> None:
        super().__init__(message)


__all__ = [
    "DEFAULT_BOTS",
    "DEFAULT_HTTP_BOTS",
    "DEFAULT_WIDGETS",
    "LOCAL_API_KEY",
    "LocalMyshellServer",
    "MALFORMED_KINDS",
    "MissingExtraError",
    "openapi_reply",
    "reply_chunks",
]

try:
    import aiohttp  # noqa: F401
    import socketio  # noqa: F401
except ImportError as _missing:  # pragma: no cover - depends on the environment
    _MISSING = _missing

    def __getattr__(name: str) -> Any:
        if name in __all__:
            raise MissingExtraError() from _MISSING
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
else:
    from ._rules import (
        DEFAULT_BOTS,
        DEFAULT_HTTP_BOTS,
        DEFAULT_WIDGETS,
        LOCAL_API_KEY,
        MALFORMED_KINDS,
        openapi_reply,
        reply_chunks,
    )
    from ._server import LocalMyshellServer
