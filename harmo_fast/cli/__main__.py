"""`python -m harmo_fast.cli` runs the `harmo` command line."""

import sys

from harmo_fast.cli import main

sys.exit(main())
