"""`python -m sas_trl.cli ...`: what `sas-trl` runs (the launcher relaunches training this way)."""

import sys

from . import main

sys.exit(main())
