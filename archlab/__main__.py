"""`python -m archlab` (also what `torchrun -m archlab` runs)."""

import sys

from archlab.cli import main

sys.exit(main())
