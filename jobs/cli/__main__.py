"""``python -m jobs.cli``: the same as the ``recon`` entry point."""

import sys

from jobs.cli import main

sys.exit(main())
