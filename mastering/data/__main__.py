"""``python -m mastering.data prepare --profile smoke|full`` (what ``make data`` runs)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
