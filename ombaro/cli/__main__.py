"""`python -m ombaro.cli`: the same as the `ombaro` console script."""

import sys

from ombaro.cli import main

sys.exit(main())
