"""Benchmark myshell_sync against the alternatives on loopback, with targets.

Usage (after ``pip install -e ".[bench]"``, from the repository)::

    python -m benchmarks            # full run, writes BENCHMARKS.md
    python -m benchmarks --quick    # small sizes, a smoke run
    python -m benchmarks --no-write # print only

(``python benchmarks/run.py`` is the same command.) The peer is a minimal
MyShell server on raw sockets in its own process, so it never shares the GIL
with the client being measured; the "peer ceiling" row shows how fast it
delivers a reply to a client that only counts bytes. Every figure is the
best of ``--rounds`` (3) rounds, the clients interleaved in each round.
Every reply's text is compared with the expected text; any difference or
failed call is printed and the exit status is 1. Targets are ratios
measured in this one run; MISS does not change the exit status.

Modules: :mod:`~benchmarks.protocol` (the wire constants and the expected
reply), :mod:`~benchmarks.peer` (the peer), :mod:`~benchmarks.clients` (the
clients measured), :mod:`~benchmarks.measure` (the timing loops and process
figures), :mod:`~benchmarks.fresh` (the scenarios run in fresh processes),
:mod:`~benchmarks.report` (the table and BENCHMARKS.md),
:mod:`~benchmarks.process` (starting Python processes) and
:mod:`~benchmarks.cli` (the command line and the order of the steps).

Only the public API of myshell_sync is used (``from myshell_sync import ...``
and ``myshell_sync.local``). ``pool.py`` and ``soak.py`` stay scripts;
``soak.py`` runs its server through :mod:`~benchmarks.local_peer`.
"""
