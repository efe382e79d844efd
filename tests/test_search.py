"""Full-text search: the index over every literal, ``/api/search`` and the search page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from escap_kg.database import load
from escap_kg.engine import local_engine
from escap_kg.search import INDEX_NAME, Index, match_expression
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

ID = "https://w3id.org/escap-kg/id/"
EKG = "https://w3id.org/escap-kg/ontology#"
TOKEN = "a-test-token-of-some-length"


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(workers=1), kg)) as test_client:
        yield test_client


def search(client: TestClient, q: str, **params: object) -> list[dict[str, object]]:
    response = client.get("/api/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    hits: list[dict[str, object]] = response.json()
    return hits


# Words found in statements, not in names --------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "iri", "kind"),
    [
        ("disparities", f"{ID}finding/fifth-appc-diversity-of-migration-flows", "Finding"),
        ("counselling", f"{ID}recommendation/fifth-appc-combat-trafficking", "Recommendation"),
    ],
)
def test_a_word_of_a_statement_finds_its_resource_first(
    client: TestClient, word: str, iri: str, kind: str
) -> None:
    hits = search(client, word)
    assert hits, f"nothing found for {word!r}"
    first = hits[0]
    assert first["iri"] == iri
    assert first["kind"] == kind
    assert f"<mark>{word}</mark>" in str(first["snippet"])
    assert isinstance(first["score"], float)
    assert first["label"]


def test_all_words_must_match_and_best_comes_first(client: TestClient) -> None:
    hits = search(client, "trafficking women", limit=50)
    assert len(hits) > 1
    scores = [float(str(h["score"])) for h in hits]
    assert scores == sorted(scores, reverse=True)
    for hit in hits:
        snippet = str(hit["snippet"]).lower()
        assert "<mark>" in snippet, hit


def test_limit_and_kind_filter(client: TestClient) -> None:
    assert len(search(client, "migration", limit=3)) == 3
    seminars = search(client, "migration", kind="Seminar", limit=50)
    assert seminars
    assert {h["kind"] for h in seminars} == {"Seminar"}


@pytest.mark.parametrize(
    "q",
    [
        '"unbalanced quote',
        "NEAR(migration labour, 2)",
        "migra*",
        "(women OR men) AND NOT children",
        "^start -minus +plus : {col}",
        "AND",
        "'; DROP TABLE resources; --",
        "\ue000mark\ue001",
    ],
)
def test_hostile_queries_never_fail(client: TestClient, q: str) -> None:
    response = client.get("/api/search", params={"q": q})
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)


def test_operators_are_words(client: TestClient) -> None:
    assert match_expression('NEAR("a" b*)') == '"NEAR" "a" "b"'
    # "migration" and "labour" are both in the data; NEAR taken as a word matches nothing.
    assert search(client, "NEAR migration labour") == []


@pytest.mark.parametrize("q", ["", "   ", "*** ((", '""'])
def test_no_words_is_a_bad_request(client: TestClient, q: str) -> None:
    response = client.get("/api/search", params={"q": q})
    assert response.status_code == 400
    assert response.text.count("\n") == 1


def test_limit_is_capped(client: TestClient) -> None:
    response = client.get("/api/search", params={"q": "migration", "limit": 100000})
    assert response.status_code == 400
    assert "limit" in response.text


def test_openapi_describes_the_search(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/search"]["get"]
    assert operation["summary"] == "Full-text search"
    assert {p["name"] for p in operation["parameters"]} == {"q", "limit", "kind"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["items"]["$ref"].endswith("/SearchHit")
    assert set(spec["components"]["schemas"]["SearchHit"]["properties"]) == {
        "iri",
        "label",
        "kind",
        "snippet",
        "score",
    }


# The index follows the graph ---------------------------------------------------------------------


def test_an_update_is_searchable(kg: KnowledgeGraph) -> None:
    fresh = KnowledgeGraph.from_files(kg.files, kg.settings)
    settings = Settings(workers=1, update_token=TOKEN)
    with TestClient(create_app(settings, fresh)) as client:
        assert search(client, "zanzibarite") == []
        update = (
            f"INSERT DATA {{ <{ID}finding/new> a <{EKG}Finding> ; "
            f'<{EKG}statement> "Rare zanzibarite deposits were found."@en }}'
        )
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
        response = client.post("/sparql", content=update, headers=auth)
        assert response.status_code == 204, response.text
        hits = search(client, "zanzibarite")
        assert [h["iri"] for h in hits] == [f"{ID}finding/new"]
        assert hits[0]["kind"] == "Finding"
        assert "<mark>zanzibarite</mark>" in str(hits[0]["snippet"])
        # The rest is still found, from the index rebuilt after the update.
        assert search(client, "counselling")


EXTRA = f"""<{ID}note/one> <http://www.w3.org/2000/01/rdf-schema#label> "A note" .
<{ID}note/one> <http://www.w3.org/2004/02/skos/core#definition> "On <b>quokkaland</b> & more" .
"""


def test_extra_files_are_indexed_and_text_is_escaped(tmp_path: Path) -> None:
    extra = tmp_path / "notes.nt"
    extra.write_text(EXTRA)
    settings = Settings(workers=1, extra_files=(extra,))
    with TestClient(create_app(settings)) as client:
        hits = search(client, "quokkaland")
        assert [h["iri"] for h in hits] == [f"{ID}note/one"]
        assert hits[0]["snippet"] == "On &lt;b&gt;<mark>quokkaland</mark>&lt;/b&gt; &amp; more"
        assert hits[0]["label"] == "A note"


def test_an_on_disk_store_is_searchable(tmp_path: Path, settings: Settings) -> None:
    extra = tmp_path / "notes.nt"
    extra.write_text(EXTRA)
    db = tmp_path / "db"
    load(db, [extra], settings)
    assert (db / INDEX_NAME).is_file()
    assert Index(db / INDEX_NAME).search("counselling")
    with TestClient(create_app(Settings(workers=1, database=db))) as client:
        assert [h["iri"] for h in search(client, "quokkaland")] == [f"{ID}note/one"]
        first = search(client, "disparities")[0]
        assert first["iri"] == f"{ID}finding/fifth-appc-diversity-of-migration-flows"


def test_an_old_store_without_an_index_says_so(tmp_path: Path, settings: Settings) -> None:
    db = tmp_path / "db"
    load(db, [], settings)
    (db / INDEX_NAME).unlink()
    with TestClient(create_app(Settings(workers=1, database=db))) as client:
        response = client.get("/api/search", params={"q": "migration"})
        assert response.status_code == 503
        assert response.text == "this store has no search index; reload it with escap-kg load\n"


def test_searches_wait_for_the_index_built_after_the_start(kg: KnowledgeGraph) -> None:
    # In memory the index is built in the background once the graph is loaded: queries are
    # answered meanwhile, searches wait for it a little, then are told to come back.
    settings = Settings(workers=1)
    engine = local_engine(settings, kg.nquads())
    with TestClient(create_app(settings, engine=engine)) as client:
        assert client.get("/sparql", params={"query": "ASK {}"}).status_code == 200
        folder = engine.source.snapshot.parent  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while not (built := sorted(folder.glob("search-*.sqlite"))):
            assert time.monotonic() < deadline, "the index was never written"
            time.sleep(0.05)
        hidden = built[0].rename(folder / "hidden.sqlite")  # as if still being built
        started = time.monotonic()
        response = client.get("/api/search", params={"q": "counselling"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.text == "the search index is being built; try again in a few seconds\n"
        assert time.monotonic() - started >= 4  # it waited for the index first
        failed = built[0].with_name(f"{built[0].name}.failed")
        failed.write_text("disk full")
        response = client.get("/api/search", params={"q": "counselling"})
        assert response.status_code == 503
        assert "Retry-After" not in response.headers
        assert response.text == "the search index could not be built; see the log\n"
        failed.unlink()
        hidden.rename(built[0])
        assert search(client, "counselling")[0]["kind"] == "Recommendation"


# The search page ---------------------------------------------------------------------------------


def test_the_search_page_shows_snippets(client: TestClient) -> None:
    response = client.get("/search", params={"q": "counselling"}, headers={"Accept": "text/html"})
    assert response.status_code == 200
    page = response.text
    assert 'href="/id/recommendation/fifth-appc-combat-trafficking"' in page
    assert "give trafficked victims <mark>counselling</mark>" in page
    assert "No resource" not in page


def test_the_search_page_escapes_the_data(tmp_path: Path) -> None:
    extra = tmp_path / "notes.nt"
    extra.write_text(EXTRA)
    with TestClient(create_app(Settings(workers=1, extra_files=(extra,)))) as client:
        page = client.get("/search", params={"q": "quokkaland"}).text
    assert "On &lt;b&gt;<mark>quokkaland</mark>&lt;/b&gt; &amp; more" in page
    assert "<b>quokkaland" not in page


@pytest.mark.parametrize("q", ["***", '"(', "zzzzqqq"])
def test_the_search_page_with_nothing_to_find(client: TestClient, q: str) -> None:
    response = client.get("/search", params={"q": q})
    assert response.status_code == 200
    assert "No resource has a text with every word of" in response.text


class _Upstream:
    """An engine that is not the local pool, as the remote engine is: it has no index."""

    generation = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def query(self, job: object, timeout: float) -> object:
        raise AssertionError("a search must not become a query")

    async def update(self, job: object, timeout: float) -> None:
        raise AssertionError("not called")


def test_an_upstream_store_has_no_search(settings: Settings) -> None:
    with TestClient(create_app(settings, engine=_Upstream())) as client:  # type: ignore[arg-type]
        response = client.get("/api/search", params={"q": "migration"})
    assert response.status_code == 501
    assert response.text.count("\n") == 1
    assert "upstream" in response.text


# The index the server builds in the background, from the files rather than the store -------------


def _index_rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        resources = conn.execute("SELECT * FROM resources ORDER BY id").fetchall()
        texts = conn.execute("SELECT rowid, names, body FROM texts ORDER BY rowid").fetchall()
    return resources, texts


def test_the_index_of_the_loaded_files_is_the_index_of_the_store(
    tmp_path: Path, kg: KnowledgeGraph
) -> None:
    import pyoxigraph as ox

    from escap_kg import entailment
    from escap_kg.search import build_index
    from escap_kg.store import SourceFile, statements
    from tests.benchmarks.generate import write_file

    snapshot = tmp_path / "snapshot.nq"
    snapshot.write_bytes(kg.nquads())
    extra = tmp_path / "extra.nt"
    write_file(extra, 3000, seed=7)
    store = ox.Store()
    store.load(path=str(snapshot), format=ox.RdfFormat.N_QUADS)
    store.load(path=str(extra), format=ox.RdfFormat.N_TRIPLES,
               to_graph=ox.NamedNode("https://w3id.org/escap-kg/graph/extra/extra"))  # fmt: skip
    assert entailment.refresh(store).triples > 1000  # the store holds more than the files
    build_index(store, tmp_path / "from-store.sqlite")
    files = [SourceFile(snapshot, "", "snapshot"), SourceFile(extra, "", "extra")]
    build_index((s for f in files for s in statements(f)), tmp_path / "from-files.sqlite")
    from_store = _index_rows(tmp_path / "from-store.sqlite")
    assert len(from_store[0]) > 500
    assert _index_rows(tmp_path / "from-files.sqlite") == from_store


def test_a_file_changed_after_it_was_loaded_is_indexed_as_the_store_holds_it(
    tmp_path: Path,
) -> None:
    import os

    from escap_kg.search import build_index
    from escap_kg.worker import StoreSource, Worker

    label = "<https://example.org/a> <http://www.w3.org/2000/01/rdf-schema#label>"
    extra = tmp_path / "extra.ttl"
    extra.write_text(f'{label} "alpha" .\n')
    snapshot = tmp_path / "snapshot.nq"
    snapshot.write_bytes(b"")
    source = StoreSource(snapshot=snapshot, extra=((extra, "https://example.org/g"),))
    worker = Worker(None, source)  # type: ignore[arg-type]  # no server: it only loads
    worker.open()
    assert worker.files_unchanged()  # indexed from the files
    # Changed on disk after the load: the index must say what the store holds ("alpha").
    extra.write_text(f'{label} "omega" .\n')
    os.utime(extra, ns=(1, 1))
    assert not worker.files_unchanged()  # indexed from the store, then
    assert worker.store is not None
    build_index(worker.store, tmp_path / "index.sqlite")
    found = Index(tmp_path / "index.sqlite")
    assert [h.iri for h in found.search("alpha")] == ["https://example.org/a"]
    assert found.search("omega") == []


@pytest.mark.slow
def test_the_index_builder_ends_when_the_zygote_that_started_it_ends(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.test_faults import write_ntriples

    big = write_ntriples(tmp_path / "big.nt", 600_000, "big")
    # A stand-in for the zygote: starts the builder as the zygote does, then waits to be killed.
    parent = subprocess.Popen(
        [sys.executable, "-c", (
            "import os, subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-m', 'escap_kg.worker', '--index', "
            f"str(os.getpid()), {str(tmp_path / 'index.sqlite')!r}, {str(big)!r}])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert parent.stdout is not None
    builder = int(parent.stdout.readline())
    time.sleep(1.0)  # the builder is reading the file
    assert Path(f"/proc/{builder}").exists()
    assert Path(f"/proc/{builder}/stat").read_text().rsplit(")", 1)[1].split()[16] == "10"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{builder}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{builder}/stat").read_text().rsplit(")", 1)[1].split()
        if stat[0] == "Z":
            break  # ended, waiting to be reaped
        time.sleep(0.05)
    else:
        assert not Path(f"/proc/{builder}").exists(), "the builder outlived its parent"
    assert not (tmp_path / "index.sqlite").exists()
