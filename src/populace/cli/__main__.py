"""`python -m populace.cli`: the `populace` command where its script is not on PATH."""

from __future__ import annotations

import sys

from populace.cli import main

sys.exit(main())
