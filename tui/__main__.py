"""``python -m tui`` runs the ``ferry`` command."""

from tui.cli import main

main()
