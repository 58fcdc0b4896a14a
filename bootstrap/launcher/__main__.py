"""``python -m bootstrap.launcher agent <type> start OPTIONS...``: see the package doc."""

import sys

from bootstrap.launcher.main import main

sys.exit(main(sys.argv[1:]))
