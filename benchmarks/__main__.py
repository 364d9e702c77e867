"""``python -m benchmarks``: run the suite (see :mod:`benchmarks.cli`)."""

import sys

from .cli import main

sys.exit(main())
