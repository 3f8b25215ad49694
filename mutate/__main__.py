"""``python -m mutate``: see mutate/run.py."""

import sys

from mutate.run import main

try:
    sys.exit(main())
except KeyboardInterrupt:
    print("mutate: interrupted; the pytest runs under way were ended and the scratch copies "
          "removed (the real tree is never written)", file=sys.stderr)
    sys.exit(130)
