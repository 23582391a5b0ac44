"""`python -m lrt`: the `lrt` command without installing its entry point."""

import sys

from lrt.cli import main

sys.exit(main())
