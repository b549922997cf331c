"""Entry point for `python -m dream_engine`."""

import sys

from dream_engine.cli.main import main

sys.exit(main())
