"""``python benchmarks/run.py``: the same as ``python -m benchmarks`` (see the package)."""

import os
import sys

if __name__ == "__main__":
    # Run as a file, the package's parent is not on sys.path; appended, so
    # myshell_sync is still imported from where it was before the package.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.cli import main

    sys.exit(main())
