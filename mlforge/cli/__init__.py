"""The `mlforge` command (cyclopts): thin commands over the core, the composition root.

May import every layer, lazily inside each command, so `mlforge --help` stays fast.
"""

from mlforge.cli.app import main

__all__ = ["main"]
