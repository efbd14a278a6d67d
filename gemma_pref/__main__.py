"""``python -m gemma_pref``: the gemma-pref command line."""

import sys

from .cli import main

sys.exit(main())
