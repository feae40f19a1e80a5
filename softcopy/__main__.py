"""`python -m softcopy`: the same as the `softcopy` command (what detached workers run)."""

import sys

from softcopy.cli.main import main

sys.exit(main())
