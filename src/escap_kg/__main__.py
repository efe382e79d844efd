"""``python -m escap_kg`` runs the CLI."""

from __future__ import annotations

from escap_kg.cli import main

if __name__ == "__main__":
    main()
