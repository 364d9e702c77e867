"""Benchmark myshell_sync against the alternatives on loopback, with targets.

Usage (after ``pip install -e ".[bench]"``, from the repository)::

    python -m benchmarks            # full run (about 2 minutes), writes BENCHMARKS.md and its plots
    python -m benchmarks --quick    # small sizes, a smoke run
    python -m benchmarks --no-write # print only

(``python benchmarks/run.py`` is the same command.) Every transport is
measured against what a user would write instead, in one run: the
WebSocket transport against raw websocket-client, gpt4free-style aiohttp
and python-socketio; the HTTP transport against requests + ``iter_lines``
and httpx + httpx-sse; the key-based API against ``requests`` + ``json``;
the OpenAI layer against ``generate()``, in process and through
``myshell-sync serve``; then how cost grows with the reply's length and
with concurrent streams, on each transport.

The peer is a minimal MyShell server on raw sockets in its own process (all
three routes on one port), so it never shares the GIL with the client being
measured; the "peer ceiling" row shows how fast it delivers a reply to a
client that only counts bytes. Every reply's text is compared with the
expected text; any difference or failed call is printed and the exit status
is 1. Targets are ratios measured in this one run; MISS does not change the
exit status, and the closing note says by how much and what the profile of
that path shows.

Modules: :mod:`~benchmarks.protocol` (the wire constants and the expected
reply), :mod:`~benchmarks.peer` (the peer), :mod:`~benchmarks.clients` (the
clients measured), :mod:`~benchmarks.measure` (the timing loops, the client
slots that reopen a failed client, process figures), :mod:`~benchmarks.growth`
(reply lengths and the slope), :mod:`~benchmarks.fresh` (the scenarios run in
fresh processes), :mod:`~benchmarks.openai_serve` (``myshell-sync serve``
against ``generate()``; also ``python -m benchmarks.openai_serve``),
:mod:`~benchmarks.report` (the table and BENCHMARKS.md),
:mod:`~benchmarks.plots` (the growth plots, with matplotlib),
:mod:`~benchmarks.process` (starting Python processes) and
:mod:`~benchmarks.cli` (the command line and the order of the steps).

Only the public API of myshell_sync is used (``from myshell_sync import ...``,
``myshell_sync.openai_api`` and ``myshell_sync.local``). ``pool.py`` and
``soak.py`` stay scripts; ``soak.py`` runs its server through
:mod:`~benchmarks.local_peer`.
"""
