"""A load generator for ``escap-kg serve`` (run with ``python -m tests.load.run``)."""
