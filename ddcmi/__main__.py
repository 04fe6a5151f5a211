"""``python -m ddcmi``: the command line (what ``torchrun -m ddcmi distill ...`` starts in every process)."""
import sys

from .cli import main

sys.exit(main())
