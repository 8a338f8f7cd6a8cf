"""``python -m mastering.data prepare --profile smoke|full`` (what ``make data`` runs)."""

import sys

from ..cli import data_main

if __name__ == "__main__":
    sys.exit(data_main())
