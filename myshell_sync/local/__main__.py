"""``python -m myshell_sync.local``: the same as ``myshell-sync serve-local``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; return the exit status."""
    from .._cli import main as cli_main

    return cli_main(["serve-local", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
