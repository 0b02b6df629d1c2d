"""`python -m harmo_fast.cli` runs the `harmo` command line."""

import sys

from harmo_fast.cli import main

# guarded: engines that start worker processes with `spawn` (vLLM) re-import the main module
if __name__ == "__main__":
    sys.exit(main())
