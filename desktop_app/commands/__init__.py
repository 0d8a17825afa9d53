"""The headless command line (`radassist <command>`): Qt-free, one module per subcommand.

- _common: exit codes, one-line errors, the subcommand dispatcher (shared with radassist-train), argparse types, the stderr progress bar.
- inspect: `radassist inspect` — index, decode and report problem files.
- deidentify: `radassist deidentify` — "Export study for sharing" (PS3.15 Annex E).
- pacs: `radassist pacs echo|find|get|send|node` — PACS networking and node settings.
- audit: `radassist audit verify|show` — check or print the audit trail.
- predict: `radassist predict` — headless inference (the model chosen per series, or --model): findings JSON, heatmaps, overlays, SEG.
- export: `radassist export` — SR, secondary captures, PDF and JSON of a reviewed study.
- info: `radassist info` — version, device, time per image, model file, the models catalog, data folder.
"""
