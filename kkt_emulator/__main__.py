"""``python -m kkt_emulator`` runs the command line."""

import sys

from kkt_emulator.cli.main import main

sys.exit(main())
