"""Frozen entry point of `radassist-train` (training, evaluation and model-file tools)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # see entry_radassist.py
    from training.cli import main

    sys.exit(main())
