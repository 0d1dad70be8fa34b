"""``python -m pixalert.cli``: the command line."""

from . import main

main()
