"""``python -m pixalert``: the command line."""

from .cli import main

main()
