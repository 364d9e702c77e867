"""Small test helpers: counting this process's sockets and file descriptors."""

from __future__ import annotations

import os
import re


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def client_sockets(server_port: int) -> int:
    """How many of this process's TCP sockets are connected *to* ``server_port``.

    Counts the client side only (the in-process server's own sockets have the
    port as their local port), in any state but LISTEN and TIME_WAIT.
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            state, inode = fields[3], fields[9]
            if remote_port == server_port and state not in ("0A", "06") and inode in inodes:
                count += 1
    return count


def eventually(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Re-check ``predicate`` until it holds or ``timeout`` passes.

    For state that another component changes without telling us (for
    example the in-process server closing its side of a socket).
    """
    import threading
    import time

    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        pause.wait(interval)
    return True


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """Import ``examples/<name>.py`` (examples are scripts, not a package)."""
    import importlib.util
    import sys

    module_name = f"myshell_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def ws_pool(client):
    """The connection pool of a client's WebSocket transport (also under auto)."""
    transport = client._transport
    return getattr(transport, "websocket", transport).pool


def http_transport(client):
    """A client's HTTP transport (made on demand under auto)."""
    transport = client._transport
    return transport.http if transport.name == "auto" else transport
