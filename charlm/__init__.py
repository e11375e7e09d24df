"""charlm: character-level lyrics language models.

The package face: `__version__`, and a small Python API for notebooks and scripts:

    import charlm
    lm = charlm.load("jay")                 # a run name or a .pt file
    print(lm.generate_text("分开", seed=1))
    lm.evaluate("窗外的麻雀在电线杆上多嘴")    # {"perplexity": ..., ...}
"""

from __future__ import annotations

from typing import Any

from charlm.version import __version__

__all__ = ["__version__", "load"]


def __getattr__(name: str) -> Any:
    # `load` pulls in torch: imported on first use, so `import charlm` (and `charlm --help`,
    # which imports the package) stays fast.
    if name in ("load", "LanguageModel"):
        from charlm import api

        return getattr(api, name)
    raise AttributeError(f"module 'charlm' has no attribute {name!r}")
