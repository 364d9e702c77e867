"""``python -m myshell_sync``: the ``myshell-sync`` command line."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
