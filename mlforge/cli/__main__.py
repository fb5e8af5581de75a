"""`python -m mlforge.cli`: the same as the `mlforge` command."""

from mlforge.cli.app import main

main()
