"""Shared test helpers: sockets and threads of this process, waiting, the
example scripts, client internals, and one call played against a scripted server.

Fixtures live in conftest.py; plain functions and constants live here.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------
# Calls: the model each transport's local server answers (the reply starts
# with the bot's name, here the same string), and prompts

MODEL = {"websocket": "gpt-4", "http": "assistant"}


def user(text: str) -> list[dict]:
    """A one-message conversation."""
    return [{"role": "user", "content": text}]


USER = user("hi")
POEM = user("Write a poem about love")  # long enough for a reply of many chunks


#: A model the local server answers, per transport (every transport).
MODELS = {"websocket": "gpt-4", "http": "assistant", "openapi": "gpt-4o-mini", "auto": "gpt-4"}


def expected_reply(transport: str, messages: list[dict]) -> str:
    """The local server's whole reply from ``MODELS[transport]`` to ``messages``:
    the chat bots echo the flattened prompt; the key-based API's widgets name
    the model, the earlier turns and the system message."""
    from myshell_sync import format_prompt
    from myshell_sync.local import openapi_reply, reply_chunks

    model = MODELS[transport]
    if transport == "openapi":
        system = any(m["role"] == "system" for m in messages)
        turns = [m for m in messages[:-1] if m["role"] != "system"]
        return openapi_reply(model, messages[-1]["content"], len(turns), system)
    return "".join(reply_chunks(model, format_prompt(messages)))


def expected_chunks(model: str, messages=POEM) -> list[str]:
    """The chunks the local server's bot ``model`` streams for ``messages``."""
    from myshell_sync import format_prompt
    from myshell_sync.local import reply_chunks

    return reply_chunks(model, format_prompt(messages))


def make_client(server, transport: str = "websocket", **options):
    """A ``Myshell`` on ``server`` with no captcha delay and a 10 s timeout."""
    from myshell_sync import Myshell

    options.setdefault("captcha_delay", 0)
    options.setdefault("timeout", 10)
    return Myshell(server.base_url, transport=transport, **options)


# ---------------------------------------------------------------------------
# This process's file descriptors, sockets and threads


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


def client_threads() -> list[str]:
    """The names of the client's own threads (all named ``myshell-*``) still running."""
    return [t.name for t in threading.enumerate() if t.name.startswith("myshell-")]


def run_threads(threads: Iterable[threading.Thread], timeout: float) -> None:
    """Start every thread, then join each; fail if one is still running after ``timeout``."""
    threads = list(threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not [t for t in threads if t.is_alive()], "a thread did not finish in time"


def eventually(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Re-check ``predicate`` until it holds or ``timeout`` passes.

    For state that another component changes without telling us (for
    example the in-process server closing its side of a socket).
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        pause.wait(interval)
    return True


class SilentServer:
    """Accepts TCP connections and never answers (nor reads): a peer that
    stalls every handshake, WebSocket upgrade or HTTP request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()


# ---------------------------------------------------------------------------
# The example scripts and the console script

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CLI = Path(sys.executable).parent / "myshell-sync"


def load_example(name: str):
    """Import ``examples/<name>.py`` (examples are scripts, not a package)."""
    import importlib.util

    module_name = f"myshell_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# Client internals


def ws_pool(client):
    """The connection pool of a client's WebSocket transport (also under auto)."""
    transport = client._transport
    return getattr(transport, "websocket", transport).pool


def http_transport(client):
    """A client's HTTP transport (made on demand under auto)."""
    transport = client._transport
    return transport.http if transport.name == "auto" else transport


# ---------------------------------------------------------------------------
# One call against a scripted server


@dataclass
class Outcome:
    chunks: list[str] = field(default_factory=list)
    error: BaseException | None = None
    elapsed: float = 0.0
    server: Any = None
    threads_at_end: list[str] = field(default_factory=list)  # client threads when the call returned or raised

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def call(
    handler,
    *,
    server_type=None,
    transport: str = "websocket",
    timeout: Any = 3,
    messages=USER,
    server_options=None,
    on_chunk=None,
    **options,
) -> Outcome:
    """Play ``handler`` on a scripted server (``scripted_http.RawServer`` unless
    ``server_type`` says otherwise, e.g. ``scripted.ScriptedServer``) against one
    call, then check that the client left no thread and no socket behind, that
    the server's handler raised nothing, and that any error is a ``MyshellError``."""
    from myshell_sync import Myshell, MyshellError

    if server_type is None:
        from scripted_http import RawServer as server_type
    options.setdefault("max_retries", 0)
    options.setdefault("close_timeout", 1.0)
    outcome = Outcome()
    with server_type(handler, **(server_options or {})) as server:
        outcome.server = server
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=timeout, **options) as client:
            started = time.monotonic()
            try:
                for chunk in client.generate(MODEL[transport], messages):
                    outcome.chunks.append(chunk)
                    if on_chunk is not None:
                        on_chunk(chunk)
            except Exception as exc:  # asserted by the test
                outcome.error = exc
            outcome.elapsed = time.monotonic() - started
            outcome.threads_at_end = client_threads()
        assert eventually(lambda: not client_threads(), 10), f"threads left: {client_threads()}"
        assert client_sockets(server.port) == 0
    assert not server.errors, server.errors
    if outcome.error is not None:
        assert isinstance(outcome.error, MyshellError), f"bare exception escaped: {outcome.error!r}"
    return outcome
