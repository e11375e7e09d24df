"""`python -m charlm`: the same command line as the `charlm` script (torchrun uses this)."""

from charlm.cli import main

main()
