"""``myshell_sync.local.LocalMyshellServer`` in its own process, for ``soak.py``.

Start it with ``ServerProcess("benchmarks.local_peer", quiet=True)``. It
prints its port, answers the line ``connects`` with how many /chat connects
it has accepted, and stops when its stdin closes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from myshell_sync.local import LocalMyshellServer

    server = LocalMyshellServer("127.0.0.1", 0)
    server.start()
    try:
        print(server.port, flush=True)
        for line in sys.stdin:
            if line.strip() == "connects":
                print(server.connects, flush=True)
    finally:
        server.stop()
    return 0
