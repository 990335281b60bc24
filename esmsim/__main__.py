"""``python -m esmsim`` is the ``esmsim`` command."""

from esmsim.cli import main

main()
