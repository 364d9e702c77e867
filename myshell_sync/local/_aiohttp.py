"""aiohttp helpers shared by the local server's HTTP routes (``_http``, ``_openapi``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

__all__ = ["POLL_INTERVAL", "Handlers", "client_gone", "lower_headers", "pause", "read_json"]

POLL_INTERVAL = 0.02  # seconds between client-gone checks during a delay


def client_gone(request: web.Request) -> bool:
    """Whether the request's connection is closed or closing."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def pause(request: web.Request, seconds: float) -> None:
    """Sleep, but raise ``ConnectionResetError`` as soon as the client leaves.

    aiohttp does not cancel a handler when its client disconnects, and a
    write would only notice after the delay.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        if client_gone(request):
            raise ConnectionResetError("the client went away")
        left = deadline - loop.time()
        if left <= 0:
            return
        await asyncio.sleep(min(left, POLL_INTERVAL))


async def read_json(request: web.Request) -> Any:
    """The request body parsed as JSON, or None if it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def lower_headers(request: web.Request) -> dict[str, str]:
    """The request's headers as a dict with lower-cased names."""
    return {k.lower(): v for k, v in request.headers.items()}


class Handlers:
    """The running handler tasks of one kind, for shutdown to cancel.

    ``closing`` tells a cancelled handler whether shutdown cancelled it
    (rather than its client going away).
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def reset(self) -> None:
        """Forget everything (called on every server start)."""
        self._tasks = set()
        self.closing = False

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Hold the current task in the set while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    async def cancel_all(self) -> None:
        """Set ``closing``, cancel every held task and wait for them to end."""
        self.closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
