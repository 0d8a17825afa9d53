"""Subcommands of `radassist-train`, one module each."""
