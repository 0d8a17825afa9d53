"""Frozen entry point of `radassist` (the GUI and its headless subcommands)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Index workers and demo-data renderers are processes (spawn/forkserver): in a frozen
    # program the child re-runs this executable, and freeze_support() turns it into the worker.
    multiprocessing.freeze_support()
    from desktop_app.cli import main

    sys.exit(main())
