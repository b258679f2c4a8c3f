"""``python -m enas_tui`` runs the CLI (the dashboard launches trainers this way)."""

from .cli import main

main()
