"""The SPARQL lexer: grammar terminals, SERVICE and LOAD detection, speed and structural limits."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pyoxigraph
import pytest

from escap_kg.sparql import (
    MAX_GROUPS,
    MAX_LIST_ITEMS,
    MAX_NESTING,
    MAX_PROJECTION,
    MAX_TRIPLE_PATTERNS,
    SparqlTextError,
    add_using_clauses,
    engine_position,
    scan,
)
from tests.ssrf_corpus import variants

TARGET = "http://127.0.0.1:9/sparql"
EX = "PREFIX ex: <http://example.org/> "


# Grammar terminals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "services"),
    [
        (f"{EX}SELECT * WHERE {{ ?s ex:a\\# ?o SERVICE <{TARGET}> {{}} }}", [TARGET]),
        (f"SELECT * WHERE {{ ?s <http://e/\\u0041#> ?o SERVICE <{TARGET}> {{}} }}", [TARGET]),
        (f"SELECT * WHERE {{ BIND('\\u0027#' AS ?x) SERVICE <{TARGET}> {{}} }}", [TARGET]),
        (f'SELECT * WHERE {{ BIND("\\"#" AS ?x) SERVICE <{TARGET}> {{}} }}', [TARGET]),
        (f'SELECT * WHERE {{ BIND("""#\n"#""" AS ?x) SERVICE <{TARGET}> {{}} }}', [TARGET]),
        (f"SELECT * WHERE {{ ?s ?p ?o # x\rSERVICE <{TARGET}> {{}} }}", [TARGET]),
        ("SELECT * WHERE { SERVICE <http://127.0.0.1:9/\\u0073parql> {} }", [TARGET]),
        ("SELECT * WHERE { SERVICE SILENT <http\\U0000003A//127.0.0.1:9/sparql> {} }", [TARGET]),
        (
            "SELECT * WHERE { SERVICE <HTTP://127.0.0.1:9/sparql> {} }",
            ["HTTP://127.0.0.1:9/sparql"],
        ),
        ("SELECT * WHERE { SERVICE <sparql> {} }", [""]),
        ("SELECT * WHERE { SERVICE <urn:x:y> {} }", [""]),
        ("SELECT * WHERE { SERVICE ?e {} }", [""]),
        (f"{EX}SELECT * WHERE {{ SERVICE ex:sparql {{}} }}", [""]),
        ("SELECT * WHERE { SERVICE # <http://127.0.0.1:9/sparql>\n ?e {} }", [""]),
        ('SELECT * WHERE { BIND("SERVICE <http://x/>" AS ?x) }', []),
        ("SELECT * WHERE { ?s <http://e/SERVICE> ?o } # SERVICE <http://x/> {}", []),
        (f"{EX}SELECT * WHERE {{ ?s ex:SERVICE ?SERVICE }}", []),
    ],
)
def test_service_targets(text: str, services: list[str]) -> None:
    assert scan(text).services == services


@pytest.mark.parametrize(
    "text",
    [
        'SELECT ?x WHERE { BIND("LOAD FROM USING WITH" AS ?x) }',
        "SELECT ?x WHERE { BIND('''LOAD\n# FROM''' AS ?x) }",
        "SELECT ?x WHERE { ?x <http://e/LOAD#FROM> ?y }",
        "SELECT ?x WHERE { ?x ?p ?o } # LOAD FROM USING WITH",
        f"{EX}SELECT ?x WHERE {{ ?x ex:LOAD ?FROM . ?x ex:with\\#using ?o }}",
    ],
)
def test_keywords_inside_strings_iris_names_and_comments_do_not_count(text: str) -> None:
    info = scan(text)
    assert not info.uses_load
    assert not info.has_dataset_clause
    assert not info.names_update_dataset
    assert info.form == "SELECT"


@pytest.mark.parametrize(
    ("text", "form", "is_update"),
    [
        ("PREFIX a: <http://a/> BASE <http://b/> select * {}", "SELECT", False),
        ("# SELECT\nASK {}", "ASK", False),
        ("\ufeffCONSTRUCT WHERE { ?s ?p ?o }", "CONSTRUCT", False),
        ("prefix a: <http://a/> insert data { a:s a:p 1.5e3, -2, .5 }", "INSERT", True),
        ("CLEAR ALL ; LOAD <http://x/>", "CLEAR", True),
    ],
)
def test_form_and_update(text: str, form: str, is_update: bool) -> None:
    info = scan(text)
    assert (info.form, info.is_update) == (form, is_update)


def test_load_anywhere_in_an_update() -> None:
    assert scan("INSERT DATA { <urn:s> <urn:p> 'x' } ;\r\nload silent <http://x/>").uses_load
    assert not scan("INSERT DATA { <urn:s> <urn:p> 'load <http://x/>' }").uses_load


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT * WHERE { ?s ?p ?o \\# SERVICE <http://x/> {} }", "'\\\\' at line 1, column 27"),
        ("SEL\\u0045CT * WHERE {}", "'\\\\' at line 1, column 4"),
        ("SELECT * WHERE { BIND(<http://e/\\x#> AS ?x) }", "at line 1, column 33"),
        (
            "ASK {\n  FILTER('abc) # SERVICE <http://x/>\n}",
            "string (or a bad escape in it) starting",
        ),
        ('ASK { FILTER("a\\q") }', "starting at line 1, column 14"),
        # '' is an empty string, then 'a) } is unterminated
        ("ASK { FILTER('''a) }", "starting at line 1, column 16"),
        ("ASK { ?s ?p ?o } %", "'%' at line 1, column 18"),
        ("ASK { ?s ?p ?o } \u00a0", "at line 1, column 18"),
        ("ASK { ?s ?p _:a\\# }", "'\\\\' at line 1, column 16"),
        ("ASK { SERVICE <http://x/\\U0011FFFF> {} }", "bad escape in the IRI at line 1"),
    ],
)
def test_text_no_terminal_covers_is_refused_with_its_position(text: str, message: str) -> None:
    with pytest.raises(SparqlTextError, match="at line") as caught:
        scan(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "SEL\\u0045CT * WHERE {}",
        "SELECT ?x WHERE { BIND(<http://a/\\u003E AS ?x) }",
        "SELECT ?x WHERE { BIND(1 AS ?x) } \\u0023 comment",
        "ASK \\u007B }",
    ],
)
def test_escapes_outside_iris_and_strings_are_errors_for_the_engine_too(text: str) -> None:
    with pytest.raises(SyntaxError):
        pyoxigraph.Store().query(text)
    with pytest.raises(SparqlTextError):
        scan(text)


# The SSRF corpus --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/sparql"


def test_the_corpus_is_large() -> None:
    corpus = variants(TARGET)
    assert len(corpus) >= 60
    assert len({name for name, _, _ in corpus}) == len(corpus)


@pytest.mark.parametrize(("name", "kind", "text"), variants(TARGET), ids=lambda v: str(v)[:40])
def test_the_lexer_flags_every_variant(name: str, kind: str, text: str) -> None:
    info = scan(text)
    if name.startswith("load"):
        assert info.uses_load, name
    else:
        assert info.uses_service, name
        assert info.services, name
        assert set(info.services) <= {TARGET, ""}, info.services
    if kind == "query":
        assert not info.is_update, name
    else:
        assert info.is_update, name


def test_every_variant_is_sparql_the_engine_accepts(closed_url: str) -> None:
    rejected = []
    for name, kind, text in variants(closed_url):
        try:
            if kind == "query":
                result = pyoxigraph.Store().query(text)
                if isinstance(result, pyoxigraph.QuerySolutions):
                    list(result)
            else:
                pyoxigraph.Store().update(text)
        except SyntaxError as err:
            rejected.append(f"{name}: {err}")
        except (OSError, RuntimeError):
            pass  # the engine tried to call out (or to bind the endpoint): it parsed
    assert not rejected


# Speed ------------------------------------------------------------------------------------------

MIB = 1024 * 1024

#: Texts of ``size`` bytes or so that a lexer with a quadratic path would choke on.
BODIES: dict[str, Callable[[int], str]] = {
    "words": lambda size: "SELECT * WHERE { ?s ?p ?o } " + "a " * (size // 2),
    "variables": lambda size: "SELECT * WHERE { ?s ?p ?o } " + "?s " * (size // 3),
    "terms": lambda size: "SELECT * WHERE { ?s ?p ?o } " + "<urn:x> 'y' " * (size // 12),
    "semicolons": lambda size: ";" * (size // 2),
    "triples": lambda size: "?s ?p ?o . " * (size // 11),
    "braces": lambda size: "{ } " * (size // 4),
    "comment": lambda size: "# " + "x" * size + "\nASK {}",
    "string": lambda size: "ASK { FILTER('" + "#" * size + "') }",
}


def _cpu_seconds(text: str) -> float:
    """The CPU time this process spends lexing ``text`` (best of three: other processes on the
    machine do not count, and a stray pause does not either)."""
    times = []
    for _ in range(3):
        started = time.process_time()
        with contextlib.suppress(SparqlTextError):  # the limits stop some early, as they should
            scan(text)
        times.append(time.process_time() - started)
    return min(times)


@pytest.mark.parametrize("kind", BODIES)
def test_a_megabyte_is_lexed_in_linear_time(kind: str) -> None:
    """Four times the text takes about four times the work, not sixteen: compared with itself,
    so the figure holds on a slow or busy machine (no absolute time limit)."""
    small, large = (_cpu_seconds(BODIES[kind](size)) for size in (MIB // 4, MIB))
    assert large < 8 * max(small, 0.002), (kind, small, large)


# Structural limits ------------------------------------------------------------------------------


def _triples(n: int) -> str:
    return "ASK { " + " ".join(f"?s ?p ?o{i} ." for i in range(n)) + " }"


def _groups(n: int) -> str:
    return "ASK { " + "{ ?s ?p ?o }" * (n - 1) + " }"


def _objects(n: int) -> str:
    return "ASK { ?s ?p " + ", ".join(f"?o{i}" for i in range(n)) + " }"


def _predicates(n: int) -> str:
    return "ASK { ?s " + "; ".join(f"?p{i} ?o{i}" for i in range(n)) + " }"


def _projection(n: int) -> str:
    return "SELECT " + " ".join(f"(1 AS ?x{i})" for i in range(n)) + " WHERE {}"


def _variables(n: int) -> str:
    return "SELECT " + " ".join(f"?x{i}" for i in range(n)) + " WHERE {}"


@pytest.mark.parametrize(
    ("make", "limit", "words"),
    [
        (_triples, MAX_TRIPLE_PATTERNS, "too many triple patterns"),
        (_groups, MAX_GROUPS, "too many group patterns"),
        (_objects, MAX_LIST_ITEMS + 1, "too many list items"),
        (_predicates, MAX_LIST_ITEMS + 1, "too many list items"),
        (_projection, MAX_PROJECTION, "too many projections"),
        (_variables, MAX_PROJECTION, "too many projections"),
    ],
    ids=["triples", "groups", "objects", "predicates", "expressions", "variables"],
)
def test_structural_limits(make: object, limit: int, words: str) -> None:
    assert callable(make)
    scan(make(limit))
    with pytest.raises(SparqlTextError, match=words) as caught:
        scan(make(limit + 1))
    assert str(limit if words != "too many list items" else MAX_LIST_ITEMS) in str(caught.value)
    assert "line 1, column" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        _projection(MAX_PROJECTION),
        "ASK " + "{" * MAX_NESTING + "}" * MAX_NESTING,
        "SELECT * WHERE {} VALUES ?x {" + " 1" * 20_000 + " }",
    ],
    ids=["projection", "nesting", "values"],
)
def test_the_engine_survives_texts_just_below_the_limits(text: str) -> None:
    scan(text)
    child = (
        "import sys, pyoxigraph\n"
        "r = pyoxigraph.Store().query(sys.stdin.read())\n"
        "print(bool(r) if isinstance(r, pyoxigraph.QueryBoolean) else len(list(r)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", child], input=text, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-500:]


# add_using_clauses ------------------------------------------------------------------------------


def test_using_clauses_go_before_each_top_level_where_but_not_delete_where() -> None:
    text = (
        "DELETE { ?s ?p ?o } # WHERE\n WHERE { ?s ?p ?o FILTER EXISTS { ?s ?p ?o } } ;\n"
        "DELETE # c\n WHERE { ?s ?p ?o } ;\n"
        "INSERT { ?s ?p 'WHERE' } WHERE { { SELECT ?s ?p WHERE { ?s ?p ?o } } }"
    )
    info = scan(text)
    assert add_using_clauses(text, info.tokens, ["urn:g1"], ["urn:g2"]) == (
        "DELETE { ?s ?p ?o } # WHERE\n USING <urn:g1> USING NAMED <urn:g2> WHERE "
        "{ ?s ?p ?o FILTER EXISTS { ?s ?p ?o } } ;\n"
        "DELETE # c\n WHERE { ?s ?p ?o } ;\n"
        "INSERT { ?s ?p 'WHERE' } USING <urn:g1> USING NAMED <urn:g2> WHERE "
        "{ { SELECT ?s ?p WHERE { ?s ?p ?o } } }"
    )


def test_tokens_keep_top_level_values_only() -> None:
    info = scan("SELECT * WHERE { VALUES ?x { 1 } } VALUES ?y { 2 }")
    assert [(t.text, t.depth) for t in info.tokens] == [("WHERE", 0), ("VALUES", 0)]


def test_engine_positions_are_read_from_oxigraphs_own_messages() -> None:
    with pytest.raises(SyntaxError) as query_error:
        pyoxigraph.Store().query("PREFIX ex: <http://example.org/>\nSELECT * WHERE { ?s ?p }")
    at = engine_position(str(query_error.value.args[0]))
    assert at is not None
    assert (at.line, at.column) == (2, 25)
    assert at.detail.startswith("expected ")
    with pytest.raises(SyntaxError) as file_error:
        list(pyoxigraph.parse(b"<a> <b> .\n", format=pyoxigraph.RdfFormat.TURTLE))
    at = engine_position(str(file_error.value.args[0]))
    assert at is not None
    assert (at.line, at.column) == (None, None)
    assert at.detail == "No scheme found in an absolute IRI"
    first_line = engine_position("error at 1:40: expected one of ...")
    assert first_line is not None
    assert first_line.column_after(30) == 10
    assert first_line.column_after(50) == 40
    assert engine_position("something else") is None
