"""Load the graph: one named graph per source file, on Oxigraph, with a union default graph."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyoxigraph as ox

from escap_kg.formats import file_formats
from escap_kg.settings import DEFAULT_BASE_IRI, Settings
from escap_kg.sparql import engine_position

if TYPE_CHECKING:
    import rdflib

# The TBox files served beside the data; shapes.ttl is for validation only and is not served.
ONTOLOGY_FILES = ("escap-kg.ttl", "vocabularies.ttl", "themes.ttl")

#: File suffix -> the RDF syntax of files we read.
FORMATS: dict[str, ox.RdfFormat] = file_formats()


class DataError(Exception):
    """An input file could not be read or parsed; ``str()`` names the file and the line."""

    def __init__(
        self, path: Path | str, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.path = Path(path)
        self.message = message
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class SourceFile:
    """A file of the graph and the named graph its statements go into."""

    path: Path
    graph: str
    kind: str  # "ontology", "data" or "extra"

    @property
    def stem(self) -> str:
        """The last path segment of the graph IRI."""
        return self.graph.rsplit("/", 1)[-1]


def rdf_format(path: Path) -> ox.RdfFormat:
    """The RDF syntax of a file from its suffix (``.gz`` is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    known = ", ".join(sorted(FORMATS))
    raise DataError(path, f"unknown RDF file type; expected one of {known} (optionally .gz)")


def file_stem(path: Path) -> str:
    """The name of a file without its suffix (nor ``.gz``): the last segment of its graph IRI."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return name.rsplit(".", 1)[0]


def source_files(settings: Settings) -> list[SourceFile]:
    """The ontology, themes and data files of the graph, plus any extra files, in load order."""
    files: list[SourceFile] = []
    for name in ONTOLOGY_FILES:
        path = settings.ontology_dir / name
        files.append(SourceFile(path, settings.graph_base + file_stem(path), "ontology"))
    if not settings.data_dir.is_dir():
        raise DataError(settings.data_dir, "data folder not found")
    for path in sorted(settings.data_dir.rglob("*.ttl")):
        files.append(SourceFile(path, settings.graph_base + file_stem(path), "data"))
    for path in settings.extra_files:
        files.append(
            SourceFile(Path(path), f"{settings.graph_base}extra/{file_stem(Path(path))}", "extra")
        )
    seen: dict[str, Path] = {}
    for sf in files:
        if sf.graph in seen:
            raise DataError(
                sf.path,
                f"named graph <{sf.graph}> is already taken by {seen[sf.graph]}; "
                "give one of the files another name",
            )
        seen[sf.graph] = sf.path
    return files


class _Rebase:
    """Maps IRIs minted under the default base onto the configured one."""

    def __init__(self, base_iri: str) -> None:
        self.prefixes = tuple(f"{DEFAULT_BASE_IRI}{p}" for p in ("id/", "graph/"))
        self.base_iri = base_iri
        self.active = base_iri != DEFAULT_BASE_IRI

    def node(self, term: ox.NamedNode) -> ox.NamedNode:
        if term.value.startswith(self.prefixes):
            return ox.NamedNode(self.base_iri + term.value[len(DEFAULT_BASE_IRI) :])
        return term

    def term(self, term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> object:
        return self.node(term) if isinstance(term, ox.NamedNode) else term


def read_bytes(path: Path) -> bytes:
    """The bytes of a file, decompressed if it ends in ``.gz``."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.name.lower().endswith(".gz") else raw
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not an RDF file") from None
    except (OSError, EOFError) as err:
        raise DataError(path, f"cannot read: {err}") from None


def parse_file(source: SourceFile, base_iri: str = DEFAULT_BASE_IRI) -> list[ox.Quad]:
    """Parse one file into quads in its named graph; raise :class:`DataError` with the line."""
    fmt = rdf_format(source.path)
    data = read_bytes(source.path)
    graph = ox.NamedNode(source.graph)
    rebase = _Rebase(base_iri)
    quads: list[ox.Quad] = []
    try:
        for quad in ox.parse(
            input=data,
            format=fmt,
            base_iri=source.path.resolve().as_uri(),
            rename_blank_nodes=True,
        ):
            g = graph if isinstance(quad.graph_name, ox.DefaultGraph) else quad.graph_name
            if rebase.active:
                quads.append(
                    ox.Quad(
                        rebase.term(quad.subject),  # type: ignore[arg-type]
                        rebase.node(quad.predicate),
                        rebase.term(quad.object),  # type: ignore[arg-type]
                        rebase.term(g),  # type: ignore[arg-type]
                    )
                )
            else:
                quads.append(ox.Quad(quad.subject, quad.predicate, quad.object, g))
    except SyntaxError as err:
        line, column = _position(err)
        message = str(err.args[0]) if err.args else str(err)
        raise DataError(source.path, _plain(message), line, column) from None
    except (ValueError, OSError) as err:
        raise DataError(source.path, str(err)) from None
    return quads


@contextmanager
def _open_rdf(source: SourceFile) -> Iterator[Any]:
    """The file as a binary stream (decompressed for ``.gz``); errors become :class:`DataError`
    naming the file and, for a syntax error, the line."""
    try:
        with open(source.path, "rb") as raw:
            gz = source.path.name.lower().endswith(".gz")
            yield gzip.GzipFile(fileobj=raw) if gz else raw
    except FileNotFoundError:
        raise DataError(source.path, "file not found") from None
    except IsADirectoryError:
        raise DataError(source.path, "is a folder, not an RDF file") from None
    except SyntaxError as err:
        message = str(err.args[0]) if err.args else str(err)
        line, column = _position(err)
        raise DataError(source.path, _plain(message), line, column) from None
    except (OSError, EOFError, ValueError) as err:
        raise DataError(source.path, f"cannot read: {err}") from None


def load_into(store: ox.Store, source: SourceFile) -> None:
    """Parse a file with Oxigraph directly into ``store``, in its named graph, atomically."""
    options: dict[str, Any] = {
        "format": rdf_format(source.path),
        "base_iri": source.path.resolve().as_uri(),
        "to_graph": ox.NamedNode(source.graph),
    }
    with _open_rdf(source) as stream:
        if source.path.name.lower().endswith(".gz"):
            store.load(stream, **options)
        else:
            # Oxigraph reads a plain file itself, much faster than through a Python stream.
            store.load(path=str(source.path), **options)


def statements(source: SourceFile) -> Iterator[ox.Triple | ox.Quad]:
    """The statements of a file as parsed, one at a time (memory stays flat).

    Raises :class:`DataError` with the line of the first syntax error.
    """
    fmt = rdf_format(source.path)
    with _open_rdf(source) as stream:
        yield from ox.parse(stream, format=fmt, base_iri=source.path.resolve().as_uri())


def _position(err: SyntaxError) -> tuple[int | None, int | None]:
    if err.lineno is not None:
        return err.lineno, err.offset
    return None, None


def _plain(message: str) -> str:
    """Oxigraph prefixes its messages with the span; we print the position ourselves."""
    at = engine_position(message)
    return message if at is None else at.detail


class KnowledgeGraph:
    """The loaded graph: an Oxigraph store holding one named graph per source file."""

    def __init__(self, store: ox.Store, files: Sequence[SourceFile], settings: Settings) -> None:
        self.store = store
        self.files = list(files)
        self.settings = settings

    @classmethod
    def load(cls, settings: Settings | None = None) -> KnowledgeGraph:
        """Load the embedded graph (and ``settings.extra_files``); all or nothing."""
        settings = settings or Settings.from_env()
        return cls.from_files(source_files(settings), settings)

    @classmethod
    def from_files(cls, files: Sequence[SourceFile], settings: Settings) -> KnowledgeGraph:
        """Load every file into a new store; any bad file raises, and the store is dropped.

        Our own (small) files are parsed here, where their IRIs can be moved to another base;
        other files are parsed by Oxigraph straight into the store, which is much faster for
        large ones.
        """
        store = ox.Store()
        for sf in files:
            if sf.kind == "extra":
                load_into(store, sf)
            else:
                store.extend(parse_file(sf, settings.base_iri))
        return cls(store, files, settings)

    def query(
        self, text: str, bindings: dict[str, ox.NamedNode | ox.Literal] | None = None
    ) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
        """Run SPARQL over the union of all graphs, with optional values bound to variables."""
        substitutions = {ox.Variable(k): v for k, v in (bindings or {}).items()}
        return self.store.query(
            text,
            use_default_graph_as_union=True,
            substitutions=substitutions or None,  # type: ignore[arg-type]
        )

    def quads(self) -> list[ox.Quad]:
        """Every quad, in a stable order."""
        return sorted(self.store, key=quad_sort_key)

    def triples(self) -> list[ox.Triple]:
        """The union graph as sorted, de-duplicated triples."""
        unique = {q.triple for q in self.store}
        return sorted(
            unique, key=lambda t: quad_sort_key(ox.Quad(t.subject, t.predicate, t.object))
        )

    def nquads(self) -> bytes:
        """The whole dataset as sorted N-Quads."""
        return ox.serialize(self.quads(), format=ox.RdfFormat.N_QUADS) or b""

    @cached_property
    def dataset(self) -> rdflib.Dataset:
        """An rdflib view of the same quads, for SHACL and serialisers that need rdflib."""
        import rdflib

        ds = rdflib.Dataset()
        ds.parse(io.BytesIO(self.nquads()), format="nquads")
        return ds

    @cached_property
    def union(self) -> rdflib.Graph:
        """The union graph as one rdflib Graph."""
        import rdflib

        graph = rdflib.Graph()
        data = ox.serialize(self.triples(), format=ox.RdfFormat.N_TRIPLES) or b""
        graph.parse(io.BytesIO(data), format="nt")
        return graph

    def triples_per_graph(self) -> dict[str, int]:
        """How many triples each named graph holds."""
        counts = Counter(
            "" if isinstance(q.graph_name, ox.DefaultGraph) else q.graph_name.value
            for q in self.store
        )
        known = {sf.graph for sf in self.files}
        per_file = {sf.graph: counts.get(sf.graph, 0) for sf in self.files}
        return per_file | {g: n for g, n in sorted(counts.items()) if g not in known}

    def __len__(self) -> int:
        return len(self.store)


def term_key(term: object) -> tuple[int, str]:
    """Sort order for RDF terms: IRIs, then blank nodes, then literals (by text and type)."""
    if isinstance(term, ox.NamedNode):
        return (0, term.value)
    if isinstance(term, ox.BlankNode):
        return (1, term.value)
    if isinstance(term, ox.Literal):
        return (2, f"{term.value}\x00{term.language or ''}\x00{term.datatype.value}")
    return (3, str(term))


RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


def quad_sort_key(quad: ox.Quad) -> tuple[object, ...]:
    """Graph, subject, rdf:type first, then predicate and object."""
    graph = "" if isinstance(quad.graph_name, ox.DefaultGraph) else quad.graph_name.value
    return (
        graph,
        term_key(quad.subject),
        quad.predicate.value != RDF_TYPE,
        quad.predicate.value,
        term_key(quad.object),
    )


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named on a command line, with folders expanded to the RDF files inside them."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and _is_rdf(p))
        else:
            yield path


def _is_rdf(path: Path) -> bool:
    try:
        rdf_format(path)
    except DataError:
        return False
    return True
