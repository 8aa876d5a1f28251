"""`python -m mesolite.cli` runs the `mesolite` command."""

import sys

from mesolite.cli import main

sys.exit(main())
