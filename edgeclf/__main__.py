"""``python -m edgeclf`` — same as the ``edgeclf`` console command."""

import sys

from .cli import main

sys.exit(main())
