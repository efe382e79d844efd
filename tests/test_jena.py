"""Apache Jena's ``rsparql`` (Java's HttpClient, h2c upgrade and all) against a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rdflib import Graph, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import RDF

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

SEMINAR_CLASS = "https://w3id.org/escap-kg/ontology#Seminar"
SEMINAR = "https://w3id.org/escap-kg/id/activity/seminar-2002-gender-equality-trafficking"
SELECT = f"SELECT ?a WHERE {{ ?a a <{SEMINAR_CLASS}> }}"
JAVA = Path("/usr/share/java")
#: What Debian's libapache-jena-java needs at run time, from its dependencies.
JARS = [
    "jena-cmds",
    "jena-arq",
    "jena-base",
    "jena-core",
    "jena-iri",
    "jena-rdfconnection",
    "jena-shacl",
    "jena-shex",
    "jena-tdb",
    "jena-tdb2",
    "jena-dboe-base",
    "jena-dboe-index",
    "jena-dboe-storage",
    "jena-dboe-trans-data",
    "jena-dboe-transaction",
    "slf4j-api",
    "slf4j-nop",
    "commons-lang3",
    "commons-io",
    "commons-codec",
    "commons-compress",
    "commons-csv",
    "commons-cli",
    "dexx.collection",
    "jsonld-java",
    "jackson-core",
    "jackson-databind",
    "jackson-annotations",
    "gson",
    "httpclient",
    "httpcore",
    "thrift",
    "protobuf",
    "titanium-json-ld",
    "jakarta.json-api",
    "guava",
]


@pytest.fixture(scope="module")
def rsparql(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The ``rsparql`` command: Jena's own script if on the PATH, else Debian's jars.

    Debian ships no script, and its jena-core.jar has Xerces' classes under ``xerces/`` but
    their message files under ``org/apache/jena/ext/xerces/``, so Jena fails to start ("internal
    error"); the message files are put where the classes look for them, ahead on the class path.
    """
    if script := shutil.which("rsparql"):
        return [script]
    jars = [JAVA / f"{jar}.jar" for jar in JARS]
    missing = [str(jar) for jar in jars if not jar.exists()]
    if missing or not shutil.which("java"):
        reason = (
            f"Apache Jena's rsparql not installed (Debian package libapache-jena-java): "
            f"{', '.join(missing[:3]) or 'no java'} missing"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs it, so CI must have it")
        pytest.skip(reason)
    messages = tmp_path_factory.mktemp("jena-xerces")
    prefix = "org/apache/jena/ext/xerces/"
    with zipfile.ZipFile(JAVA / "jena-core.jar") as core:
        for name in core.namelist():
            if name.startswith(prefix) and name.endswith(".properties"):
                target = messages / "xerces" / name[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(core.read(name))
    classpath = ":".join([str(messages), *map(str, jars)])
    return ["java", "-cp", classpath, "arq.rsparql"]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    started = LiveServer().wait()
    yield started
    started.stop()


def run(rsparql: list[str], server: LiveServer, query: str, *options: str) -> str:
    done = subprocess.run(
        [*rsparql, "--service", f"{server.url}/sparql", *options, query],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("options", [[], ["--post"]], ids=["get", "post"])
def test_select(rsparql: list[str], server: LiveServer, options: list[str]) -> None:
    answer = json.loads(run(rsparql, server, SELECT, "--results=json", *options))
    assert [row["a"]["value"] for row in answer["results"]["bindings"]] == [SEMINAR]


@pytest.mark.parametrize("options", [[], ["--post"]], ids=["get", "post"])
def test_ask(rsparql: list[str], server: LiveServer, options: list[str]) -> None:
    answers = [
        json.loads(run(rsparql, server, query, "--results=json", *options))["boolean"]
        for query in (
            f"ASK {{ <{SEMINAR}> a <{SEMINAR_CLASS}> }}",
            f"ASK {{ <{SEMINAR}> a <{SEMINAR}> }}",
        )
    ]
    assert answers == [True, False]


def test_construct(rsparql: list[str], server: LiveServer) -> None:
    query = f"CONSTRUCT {{ ?a a <{SEMINAR_CLASS}> }} WHERE {{ ?a a <{SEMINAR_CLASS}> }}"
    graph = Graph().parse(data=run(rsparql, server, query, "--post", "--results=nt"), format="nt")
    assert set(graph) == {(URIRef(SEMINAR), RDF.type, URIRef(SEMINAR_CLASS))}


@pytest.mark.parametrize("options", [[], ["--post"]], ids=["get", "post"])
def test_describe(rsparql: list[str], server: LiveServer, options: list[str]) -> None:
    """Jena gets the whole description: the same triples as a plain HTTP client."""
    query = f"DESCRIBE <{SEMINAR}>"
    graph = Graph().parse(data=run(rsparql, server, query, "--results=nt", *options), format="nt")
    direct = httpx.get(
        f"{server.url}/sparql",
        params={"query": query},
        headers={"Accept": "application/n-triples"},
    )
    expected = Graph().parse(data=direct.text, format="nt")
    assert (URIRef(SEMINAR), RDF.type, URIRef(SEMINAR_CLASS)) in graph
    assert len(graph) > 5
    assert isomorphic(graph, expected)
