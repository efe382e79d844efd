"""Plain rdflib-endpoint over an in-memory rdflib Dataset, the baseline the benchmark compares to.

``python -m tests.benchmarks.rdflib_endpoint_server --embedded EMBEDDED.nq --data FILE.nt
--graph IRI --port P`` parses our embedded graph (as exported, one named graph per file) and the
generated file (into the named graph ``IRI``) into ``rdflib.Dataset(default_union=True)`` and
serves it with ``rdflib_endpoint.SparqlEndpoint`` at ``/sparql`` under uvicorn.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import rdflib
import uvicorn
from rdflib_endpoint import SparqlEndpoint


def build(embedded: Path, data: Path, graph: str) -> rdflib.Dataset:
    """The dataset: the embedded graph's quads plus the data file in its own named graph."""
    dataset = rdflib.Dataset(default_union=True)
    dataset.parse(embedded, format="nquads")
    dataset.graph(rdflib.URIRef(graph)).parse(data, format="nt")
    return dataset


def main(argv: list[str] | None = None) -> int:
    """Load, then serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedded", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dataset = build(args.embedded, args.data, args.graph)
    print(
        f"loaded {len(dataset):,} quads in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    app = SparqlEndpoint(graph=dataset, path="/sparql", title="rdflib-endpoint baseline")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
