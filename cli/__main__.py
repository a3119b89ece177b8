"""`python -m cli`: the same as the `ombaro` console script."""

import sys

from cli import main

sys.exit(main())
