"""`python -m loadbay` runs the CLI."""

from loadbay.cli import main

main()
