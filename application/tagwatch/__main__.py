"""`python -m tagwatch` runs the command-line interface."""

from tagwatch.cli import main

main()
