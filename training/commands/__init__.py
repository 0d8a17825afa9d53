"""Subcommands of `radassist-train`, one module each (layoutflags: the public-layout flags several share; configflags: --set and the config it makes with --config)."""
