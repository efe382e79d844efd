"""The federated catalogue query, and SERVICE, which is refused unless the endpoint is allowed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import httpx
import pyoxigraph as ox
import pytest
from fastapi.testclient import TestClient

from escap_kg.queries import find_query, serialize_result
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from tests.conftest import FIXTURES
from tests.test_remote import OxigraphServer, oxigraph

WIKIDATA = "https://query.wikidata.org/sparql"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OxigraphServer]:
    """A second local endpoint standing in for Wikidata's."""
    with oxigraph(tmp_path_factory.mktemp("wikidata")) as server:
        labels = (FIXTURES / "federated" / "wikidata-labels.ttl").read_bytes()
        loaded = httpx.post(
            f"{server.store_url}?default", content=labels, headers={"Content-Type": "text/turtle"}
        )
        assert loaded.status_code in (200, 201, 204), loaded.text
        yield server


def local_text(server: OxigraphServer) -> str:
    query = find_query("wikidata-names-of-partners")
    assert query.federated == (WIKIDATA,)
    return query.text.replace(f"SERVICE <{WIKIDATA}>", f"SERVICE <{server.query_url}>")


EXPECTED = [
    ["agent", "label", "item", "wikidataLabel"],
    [
        "https://w3id.org/escap-kg/id/country/sweden",
        "Sweden",
        "http://www.wikidata.org/entity/Q34",
        "Sweden",
    ],
    [
        "https://w3id.org/escap-kg/id/organization/un-women",
        "UN Women",
        "http://www.wikidata.org/entity/Q641576",
        "UN Women",
    ],
    [
        "https://w3id.org/escap-kg/id/organization/unfpa",
        "UNFPA",
        "http://www.wikidata.org/entity/Q623036",
        "United Nations Population Fund",
    ],
    [
        "https://w3id.org/escap-kg/id/organization/united-nations",
        "United Nations",
        "http://www.wikidata.org/entity/Q1065",
        "United Nations",
    ],
    [
        "https://w3id.org/escap-kg/id/organization/escap",
        "United Nations Economic and Social Commission for Asia and the Pacific",
        "http://www.wikidata.org/entity/Q1142901",
        "Economic and Social Commission for Asia and the Pacific",
    ],
    [
        "https://w3id.org/escap-kg/id/organization/ecosoc",
        "United Nations Economic and Social Council",
        "http://www.wikidata.org/entity/Q170075",
        "United Nations Economic and Social Council",
    ],
]


def test_federated_query_against_a_local_endpoint(
    kg: KnowledgeGraph, stand_in: OxigraphServer
) -> None:
    result = kg.query(local_text(stand_in))
    assert isinstance(result, ox.QuerySolutions)
    rows = list(csv.reader(io.StringIO(serialize_result(result, "csv").decode())))
    assert rows == EXPECTED


def test_service_is_refused_unless_allowed(kg: KnowledgeGraph, stand_in: OxigraphServer) -> None:
    text = local_text(stand_in)
    with TestClient(create_app(Settings(workers=1), kg)) as closed:
        refused = closed.get("/sparql", params={"query": text})
        assert refused.status_code == 400
        assert "--allow-service" in refused.text
    allowed = Settings(workers=1, service_allowlist=(stand_in.query_url,))
    with TestClient(create_app(allowed, kg)) as open_:
        answer = open_.get("/sparql", params={"query": text}, headers={"Accept": "text/csv"})
        assert answer.status_code == 200, answer.text
        assert list(csv.reader(io.StringIO(answer.text))) == EXPECTED
        other = text.replace(stand_in.query_url, "http://127.0.0.1:9/sparql")
        assert open_.get("/sparql", params={"query": other}).status_code == 400
        variable = (
            "SELECT * WHERE { BIND(<http://127.0.0.1:9/sparql> AS ?e) SERVICE ?e { ?s ?p ?o } }"
        )
        assert open_.get("/sparql", params={"query": variable}).status_code == 400
