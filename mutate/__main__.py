"""``python -m mutate``: see mutate/run.py."""

import sys

from mutate.run import main

sys.exit(main())
