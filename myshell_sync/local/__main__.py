"""Run the local MyShell server until Ctrl-C: ``python -m myshell_sync.local``."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import List, Optional

from ._openapi import WIDGET_RUN_PATH
from ._rules import LOCAL_API_KEY
from ._server import LocalMyshellServer


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m myshell_sync.local",
        description="Serve a local MyShell chat server (Socket.IO, /ws/, /chat; "
                    "the HTTP API; the key-based API).")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (0: any)")
    parser.add_argument("--chunk-delay", type=float, default=0.0, metavar="S",
                        help="seconds between streamed chunks")
    parser.add_argument("--captcha-window", type=float, default=0.0, metavar="S",
                        help="answer need_verify_captcha to requests sent sooner "
                             "than S seconds after connecting")
    parser.add_argument("--api-key", action="append", metavar="KEY",
                        help="a key the key-based API accepts (repeatable; "
                             f"default {LOCAL_API_KEY})")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log connections and requests to stderr")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Serve until interrupted; return the exit status."""
    args = _parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("myshell_sync.local.socketio").setLevel(logging.WARNING)
        logging.getLogger("myshell_sync.local.engineio").setLevel(logging.WARNING)
    server = LocalMyshellServer(args.host, args.port, chunk_delay=args.chunk_delay,
                                captcha_window=args.captcha_window,
                                api_keys=args.api_key)
    server.start()
    keys = ", ".join(sorted(server.api_keys))
    print(f"myshell local server: {server.base_url} (websocket {server.ws_url}); "
          f"openapi base URL {server.base_url} (POST {WIDGET_RUN_PATH}, "
          f"x-myshell-openapi-key: {keys}); Ctrl-C to stop", flush=True)
    forever = threading.Event()
    try:
        while not forever.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
