"""charlm: character-level lyrics language models."""

__version__ = "0.1.0"
