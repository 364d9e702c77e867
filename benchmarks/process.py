"""New Python processes for the benchmarks: peers, and scenarios that need a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TypeVar

_S = TypeVar("_S", bound="ServerProcess")
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_command(module: str, *args: str) -> list[str]:
    """A command running ``module.main(args)`` in a new interpreter.

    That interpreter finds this ``benchmarks`` package and the same
    ``myshell_sync`` as this process, wherever it is started from.
    """
    import myshell_sync

    paths = [os.path.dirname(os.path.dirname(os.path.abspath(myshell_sync.__file__))), _PACKAGE_PARENT]
    boot = f"import sys; sys.path[:0] = {paths!r}; from {module} import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", boot, *args]


class ServerProcess:
    """A server in its own process, so it never shares the GIL with the client measured.

    ``module.main`` prints its TCP port on its first line of output and
    serves on 127.0.0.1 until its stdin closes; :meth:`ask` writes one line
    to its stdin and reads one line of answer.
    """

    def __init__(self, module: str, *args: str, quiet: bool = False) -> None:
        self.proc = subprocess.Popen(
            python_command(module, *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else None,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"{module} did not start (said {line!r})")
        self.port = int(line)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def ask(self, question: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(question + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self, timeout: float | None = 5) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
