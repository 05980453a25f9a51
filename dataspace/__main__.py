"""``python -m dataspace``: the same as the ``dataspace`` command."""

from dataspace.cli import main

main()
