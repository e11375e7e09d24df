"""The package version: one place, imported by the checkpoint header, `--version` and packaging."""

__version__ = "0.1.0"
