"""Run the WSGI application under waitress (the ``server`` extra).

waitress is a threaded, pure-Python production WSGI server; with its default
``send_bytes=1`` each chunk an application yields is written to the socket at
once, so server-sent events stream. A stream holds one of its threads for the
whole reply: ``threads`` bounds the concurrent requests.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence
from typing import Any, Callable

from ._wsgi import API_KEYS_ENV, create_app

__all__ = ["Server", "load_waitress"]

log = logging.getLogger("myshell_sync")


def load_waitress() -> Any:
    """The waitress module, or ImportError saying how to install it."""
    try:
        import waitress.server
    except ImportError:
        raise ImportError(
            'myshell-sync serve needs waitress: pip install ".[server]" (from a clone of myshell_sync)'
        ) from None
    return waitress.server


class Server:
    """One waitress server on ``host:port`` (0 picks a free port); ``url`` is known once created."""

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 16,
        channel_timeout: int = 300,
    ) -> None:
        server_module = load_waitress()
        #: waitress's socket map: its loop runs while the map holds a dispatcher
        self._map: dict[int, Any] = {}
        self._server = server_module.create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            ident="myshell-sync",
            channel_timeout=channel_timeout,
            clear_untrusted_proxy_headers=True,
        )
        self.host = host
        self.port: int = self._server.effective_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (from another thread or a signal handler)."""
        try:
            self._server.run()
        finally:
            self._server.task_dispatcher.shutdown(timeout=5)

    def stop(self) -> None:
        """Make :meth:`serve_forever` return: close the listener and every
        connection (open streams are cut; their replies cancelled upstream).
        Safe from any thread and from a signal handler."""
        self._server.trigger.pull_trigger(self._close_all)

    def _close_all(self) -> None:  # in waitress's loop thread
        for dispatcher in list(self._map.values()):
            dispatcher.close()


def stop_on_signals(server: Server, on_stop: Callable[[], None] | None = None) -> None:
    """SIGINT and SIGTERM stop ``server`` (also when SIGINT was inherited as ignored)."""

    def handler(signum: int, frame: Any) -> None:
        log.info("serve: signal %d, stopping", signum)
        if on_stop is not None:
            on_stop()
        server.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def serve(
    client: Any, *, host: str, port: int, threads: int, api_keys: Sequence[str] | None, announce: Callable[[str], None]
) -> int:
    """``myshell-sync serve``: ``create_app(client)`` under waitress until SIGINT/SIGTERM; returns 0."""
    server = Server(create_app(client, api_keys=api_keys), host=host, port=port, threads=threads)
    stop_on_signals(server)
    keys = "a bearer key" if api_keys or os.environ.get(API_KEYS_ENV) else "no key"
    announce(
        f"OpenAI-compatible API at {server.url}/v1 (needs {keys}; "
        f"OpenAI(base_url={server.url + '/v1'!r}, api_key=...)); Ctrl-C to stop"
    )
    server.serve_forever()
    return 0
