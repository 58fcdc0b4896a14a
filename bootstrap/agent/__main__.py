"""``python -m bootstrap.agent agent <type> start OPTIONS...``: see the package doc."""

import sys

from bootstrap.agent.process import main

sys.exit(main(sys.argv[1:]))
