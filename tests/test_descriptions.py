"""The service and dataset descriptions are written once per version of the store, off the
event loop, and written again after an update."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import rdflib
from fastapi.testclient import TestClient

import escap_kg.void
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

TOKEN = "a-token-for-the-description-tests"


@pytest.fixture
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(workers=1, update_token=TOKEN), kg)) as test_client:
        yield test_client


def test_descriptions_are_written_once_per_version(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    service = escap_kg.void.service_description
    dataset = escap_kg.void.describe_dataset

    def counted_service(*args: object) -> rdflib.Graph:
        calls.append("service")
        return service(*args)  # type: ignore[arg-type]

    def counted_dataset(*args: object) -> rdflib.Graph:
        calls.append("dataset")
        return dataset(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(escap_kg.void, "service_description", counted_service)
    monkeypatch.setattr(escap_kg.void, "describe_dataset", counted_dataset)
    turtle = {"Accept": "text/turtle"}
    first = client.get("/sparql", headers=turtle)
    again = client.get("/sparql", headers=turtle)
    assert first.status_code == 200
    assert first.content == again.content
    void = [client.get("/.well-known/void", headers=turtle) for _ in range(2)]
    assert void[0].content == void[1].content
    assert calls == ["service", "dataset"], "each written once"
    client.get("/sparql", headers={"Accept": "application/ld+json"})
    assert calls == ["service", "dataset", "service"], "another media type is written anew"

    update = client.post(
        "/sparql",
        content="INSERT DATA { GRAPH <urn:x:new> { <urn:x:a> <urn:x:b> 1 } }",
        headers={
            "Content-Type": "application/sparql-update",
            "Authorization": f"Bearer {TOKEN}",
        },
    )
    assert update.status_code == 204
    after = client.get("/sparql", headers=turtle)
    assert calls[-1] == "service", "a new version of the store is described anew"
    assert b"urn:x:new" in after.content
    assert b"urn:x:new" not in first.content


def test_many_host_names_do_not_grow_the_cache(client: TestClient) -> None:
    from escap_kg.service import MAX_DESCRIPTIONS

    for index in range(MAX_DESCRIPTIONS * 3):
        answer = client.get(
            "/sparql", headers={"Accept": "text/turtle", "Host": f"host-{index}.example"}
        )
        assert answer.status_code == 200
        assert f"host-{index}.example".encode() in answer.content
    state = client.app.state.escap  # type: ignore[attr-defined]
    assert len(state.descriptions) <= MAX_DESCRIPTIONS
