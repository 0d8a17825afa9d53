"""The headless command line (`radassist <command>`): Qt-free, one module per subcommand.

- _common: one-line error reporting, exit codes, the stderr progress bar.
- inspect: `radassist inspect` — index, decode and report problem files.
"""
