"""``python -m mastering``: the same command line as ``mastering``."""

import sys

from .cli import main

sys.exit(main())
