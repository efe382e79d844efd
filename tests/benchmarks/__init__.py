"""Benchmarks of the SPARQL endpoint against Oxigraph and rdflib-endpoint (not run by pytest)."""
