"""Linked-data pages: every IRI we mint answers, as a page for people or as RDF by negotiation."""

from __future__ import annotations

from escap_kg.pages.routes import add_page_routes

__all__ = ["add_page_routes"]
