"""The headless command line (`radassist <command>`): Qt-free, one module per subcommand.

- _common: one-line error reporting, exit codes, the stderr progress bar.
- inspect: `radassist inspect` — index, decode and report problem files.
- deidentify: `radassist deidentify` — "Export study for sharing" (PS3.15 Annex E).
- pacs: `radassist pacs echo|find|get|send|node` — PACS networking and node settings.
- audit: `radassist audit verify|show` — check or print the audit trail.
"""
