"""`python -m app.cli`: the `scalemesh` command, for when the console script is not installed."""

import sys

from app.cli import main

sys.exit(main())
