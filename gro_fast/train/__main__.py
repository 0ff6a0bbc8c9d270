"""``python -m gro_fast.train`` / ``torchrun --nproc_per_node=N -m gro_fast.train``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
