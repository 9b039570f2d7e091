"""``python -m robustgan ...`` (used by torchrun) is the ``robustgan`` command."""
import sys

from .cli import main

sys.exit(main())
