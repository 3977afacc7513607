"""``python -m service`` runs the command line."""

from service.cli.main import main

main()
