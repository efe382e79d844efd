"""The entailed graph: class-aware answers, refreshed by updates, and off when graphs are named."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyoxigraph as ox
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from escap_kg import entailment
from escap_kg.cli import app as cli
from escap_kg.database import load
from escap_kg.queries import Query, run
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.test_queries import LOCAL, expected_rows, oxigraph_rows

ID = "https://w3id.org/escap-kg/id/"
EKG = "https://w3id.org/escap-kg/ontology#"
ENTAILED = "https://w3id.org/escap-kg/graph/entailed"
TOKEN = "an-entailment-test-token"
ACTIVITIES = [
    f"{ID}activity/egm-2001-migration-and-development",
    f"{ID}activity/egm-2003-international-migration-and-development",
    f"{ID}activity/fifth-appc",
    f"{ID}activity/seminar-2002-gender-equality-trafficking",
]
ORGANIZATIONS = [
    f"{ID}organization/{slug}"
    for slug in (
        "daw",
        "ecosoc",
        "escap",
        "government-of-sweden",
        "instraw",
        "ministry-for-foreign-affairs-of-sweden",
        "osagi",
        "un-women",
        "unfpa",
        "unifem",
        "united-nations",
    )
]
ACTOR_GROUPS = [
    f"{ID}actor-group/{slug}"
    for slug in ("civil-society-organizations", "governments", "international-community")
]
EXPECTED = {
    f"{EKG}Activity": ACTIVITIES,
    "https://schema.org/Event": ACTIVITIES,
    "http://www.w3.org/ns/prov#Activity": [*ACTIVITIES, f"{ID}derivation/rdfs-entailment"],
    "http://www.w3.org/ns/org#Organization": ORGANIZATIONS,
    # A country is a place, not an agent: the Government of Sweden is the partner.
    "http://www.w3.org/ns/prov#Agent": sorted([*ACTOR_GROUPS, *ORGANIZATIONS]),
}
runner = CliRunner()


def instances_query(cls: str) -> str:
    return f"SELECT ?x WHERE {{ ?x a <{cls}> }} ORDER BY ?x"


def select(client: TestClient, query: str, params: dict[str, object] | None = None) -> list[str]:
    response = client.get(
        "/sparql", params={"query": query, **(params or {})}, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200, response.text
    return [line for line in response.text.splitlines()[1:] if line]


@pytest.fixture(scope="module")
def entailed_kg(kg: KnowledgeGraph) -> KnowledgeGraph:
    fresh = KnowledgeGraph.from_files(kg.files, kg.settings)
    entailment.refresh(fresh.store, entailment.entailed_graph(kg.settings.base_iri))
    return fresh


@pytest.fixture
def writable(kg: KnowledgeGraph) -> Iterator[TestClient]:
    fresh = KnowledgeGraph.from_files(kg.files, kg.settings)
    with TestClient(create_app(Settings(workers=1, update_token=TOKEN), fresh)) as client:
        yield client


@pytest.mark.parametrize(("cls", "members"), EXPECTED.items(), ids=lambda v: str(v)[-12:])
def test_superclasses_answer_on_the_engine(
    entailed_kg: KnowledgeGraph, cls: str, members: list[str]
) -> None:
    result = entailed_kg.query(instances_query(cls))
    assert isinstance(result, ox.QuerySolutions)
    assert [row["x"].value for row in result] == members  # type: ignore[union-attr]


def test_refresh_is_idempotent_and_never_repeats_a_stated_triple(
    entailed_kg: KnowledgeGraph,
) -> None:
    graph = ox.NamedNode(ENTAILED)
    before = set(entailed_kg.store.quads_for_pattern(None, None, None, graph))
    again = entailment.refresh(entailed_kg.store)
    assert again.graph == ENTAILED
    assert set(entailed_kg.store.quads_for_pattern(None, None, None, graph)) == before
    assert again.triples == len(before) > 100
    stated = {q.triple for q in entailed_kg.store if q.graph_name != graph}
    assert not stated & {q.triple for q in before}


def test_subproperties_are_entailed(entailed_kg: KnowledgeGraph) -> None:
    # ekg:keyAgendaItem and ekg:focus are rdfs:subPropertyOf dcterms:subject.
    subject = "<http://purl.org/dc/terms/subject>"
    theme = f"<{ID}activity/fifth-appc> {subject} <{ID}theme/migration-and-development>"
    answer = entailed_kg.query(f"ASK {{ GRAPH <{ENTAILED}> {{ {theme} }} }}")
    assert isinstance(answer, ox.QueryBoolean)
    assert bool(answer)


@pytest.mark.parametrize("query", LOCAL, ids=[q.id for q in LOCAL])
def test_catalogue_answers_do_not_change(entailed_kg: KnowledgeGraph, query: Query) -> None:
    result = run(entailed_kg, query.text)
    if isinstance(result, ox.QuerySolutions):
        assert oxigraph_rows(result) == expected_rows(query), f"{query.id} changed"


def test_the_endpoint_answers_with_superclasses(writable: TestClient) -> None:
    for cls, members in EXPECTED.items():
        assert select(writable, instances_query(cls)) == members, cls


def test_naming_graphs_switches_entailment_off(writable: TestClient) -> None:
    stated = [f"https://w3id.org/escap-kg/graph/paragraph-{n}" for n in range(1, 6)]
    activity = instances_query(f"{EKG}Activity")
    assert select(writable, activity, {"default-graph-uri": stated}) == []
    froms = " ".join(f"FROM <{g}>" for g in stated)
    assert select(writable, activity.replace("WHERE", f"{froms} WHERE", 1)) == []
    with_entailed = [*stated, ENTAILED]
    assert select(writable, activity, {"default-graph-uri": with_entailed}) == ACTIVITIES


def test_updates_refresh_the_entailed_graph(writable: TestClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
    triple = f"<{ID}activity/x> a <{EKG}Seminar>"
    ask = {"query": f"ASK {{ <{ID}activity/x> a <{EKG}Activity> }}"}
    insert = f"INSERT DATA {{ GRAPH <{ID}graph-test> {{ {triple} }} }}"
    assert writable.post("/sparql", content=insert, headers=headers).status_code == 204
    assert writable.get("/sparql", params=ask).json()["boolean"] is True
    delete = f"DELETE DATA {{ GRAPH <{ID}graph-test> {{ {triple} }} }}"
    assert writable.post("/sparql", content=delete, headers=headers).status_code == 204
    assert writable.get("/sparql", params=ask).json()["boolean"] is False


def test_the_command_line_sees_entailments() -> None:
    ask = f"ASK {{ <{ID}activity/fifth-appc> a <https://schema.org/Event> }}"
    result = runner.invoke(cli, ["query", "--sparql", ask, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"boolean":true' in result.output.replace(" ", "")


def test_load_builds_the_entailed_graph_on_disk(tmp_path: Path, settings: Settings) -> None:
    database = tmp_path / "store"
    load(database, [], settings)
    served = replace(Settings(), database=database, workers=1, update_token=TOKEN)
    with TestClient(create_app(served)) as client:
        assert (
            select(client, instances_query("http://www.w3.org/ns/prov#Agent"))
            == (EXPECTED["http://www.w3.org/ns/prov#Agent"])
        )
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
        group = f"<{ID}actor-group/x> a <{EKG}ActorGroup>"
        insert = f"INSERT DATA {{ GRAPH <{ID}graph-test> {{ {group} }} }}"
        assert client.post("/sparql", content=insert, headers=headers).status_code == 204
        ask = {"query": f"ASK {{ <{ID}actor-group/x> a <http://www.w3.org/ns/prov#Agent> }}"}
        assert client.get("/sparql", params=ask).json()["boolean"] is True


# The direct method and the rules derive the same graph --------------------------------------------

EX = "https://example.org/"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
HIERARCHY = f"""
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix ex: <{EX}> .
ex:A rdfs:subClassOf ex:B . ex:B rdfs:subClassOf ex:C . ex:C rdfs:subClassOf ex:A .
ex:D rdfs:subClassOf [ a owl:Restriction ] .
ex:p rdfs:subPropertyOf ex:q . ex:q rdfs:subPropertyOf ex:r .
ex:x a ex:A, ex:D ; ex:p "text"@en, ex:y .
ex:y a ex:B ; ex:r ex:x .
"""


def _two_stores(turtle: str) -> tuple[ox.Store, ox.Store]:
    stores = []
    for _ in range(2):
        store = ox.Store()
        store.load(turtle.encode(), format=ox.RdfFormat.TURTLE, to_graph=ox.NamedNode(f"{EX}g1"))
        # One fact stated twice, in another graph: never derived.
        store.add(ox.Quad(ox.NamedNode(f"{EX}x"), ox.NamedNode(f"{EX}q"), ox.NamedNode(f"{EX}y"),
                          ox.NamedNode(f"{EX}g2")))  # fmt: skip
        # The store's own default graph is not read by the rules.
        store.add(ox.Quad(ox.NamedNode(f"{EX}z"), ox.NamedNode(f"{EX}p"), ox.Literal("no")))
        stores.append(store)
    return stores[0], stores[1]


def _entailed(store: ox.Store) -> set[tuple[str, str, str]]:
    graph = ox.NamedNode(ENTAILED)
    blank = "_:b"  # the restriction's blank node has one label per store
    return {
        tuple(blank if isinstance(t, ox.BlankNode) else str(t) for t in q.triple)  # type: ignore[misc]
        for q in store.quads_for_pattern(None, None, None, graph)
    }


@pytest.mark.parametrize(
    "extra",
    ["", f"<{EX}q> <http://www.w3.org/2000/01/rdf-schema#subPropertyOf> "
         "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type> ."],
    ids=["direct", "falls-back-to-the-rules"],
)  # fmt: skip
def test_refresh_derives_what_the_rules_derive(extra: str) -> None:
    fast, slow = _two_stores(HIERARCHY + extra)
    done = entailment.refresh(fast, ENTAILED)
    entailment.refresh_by_rules(slow, ENTAILED)
    assert _entailed(fast) == _entailed(slow)
    assert done.triples == len(_entailed(fast))
    assert (f"<{EX}x>", f"<{EX}r>", '"text"@en') in _entailed(fast)
    assert (f"<{EX}x>", f"<{EX}q>", f"<{EX}y>") not in _entailed(fast)
    assert (f"<{EX}z>", f"<{EX}q>", '"no"') not in _entailed(fast)
    assert (f"<{EX}A>", "<http://www.w3.org/2000/01/rdf-schema#subClassOf>", f"<{EX}A>") in (
        _entailed(fast)
    )
    assert (f"<{EX}x>", "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>", "_:b") in (
        _entailed(fast)
    )
    # Idempotent: a second refresh finds the same graph.
    assert entailment.refresh(fast, ENTAILED).triples == done.triples


def _many_pairs(store: ox.Store) -> None:
    """A hierarchy of 12 classes and 6 properties (about 40 pairs of a term and a super-term)
    and a few thousand statements using them, so the pairs' queries run several at a time."""
    lines = []
    for i in range(1, 12):
        lines.append(f"<{EX}C{i}> <{RDFS}subClassOf> <{EX}C{(i - 1) // 2}> .")
    for i in range(1, 6):
        lines.append(f"<{EX}p{i}> <{RDFS}subPropertyOf> <{EX}p{i - 1}> .")
    for n in range(3000):
        lines.append(f"<{EX}i{n}> <{RDF_TYPE}> <{EX}C{n % 12}> .")
        lines.append(f'<{EX}i{n}> <{EX}p{n % 6}> "v{n}" .')
    store.load("\n".join(lines).encode(), format=ox.RdfFormat.N_TRIPLES,
               to_graph=ox.NamedNode(f"{EX}g1"))  # fmt: skip


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_the_pairs_derived_on_threads_and_loaded_meanwhile_equal_the_rules(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch per few queries: each is bulk-loaded while the next few queries run.
    monkeypatch.setattr(entailment, "_BATCH_BYTES", 1)
    fast = ox.Store(str(tmp_path / "db")) if where == "disk" else ox.Store()
    slow = ox.Store()
    for store in (fast, slow):
        _many_pairs(store)
    done = entailment.refresh(fast, ENTAILED)
    entailment.refresh_by_rules(slow, ENTAILED)
    assert done.triples == len(_entailed(slow)) > 6000
    assert _entailed(fast) == _entailed(slow)
