"""``python -m listening_test``: see :mod:`listening_test.cli`."""

import sys

from .cli import main

sys.exit(main())
