"""escap-kg: a knowledge graph of ESCAP's work on international migration and development."""

from __future__ import annotations

__version__ = "0.1.0"
