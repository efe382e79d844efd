"""Links to other UN datasets are kept honest: known identifier forms, confidence and source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import SKOS
from typer.testing import CliRunner

from escap_kg.cli import app
from escap_kg.links import DATASETS, dataset_of, link_problems, list_links
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph

LINK_FILES = {
    "wikidata.ttl": "Wikidata",
    "unbis.ttl": "UNBIS Thesaurus",
    "sdg.ttl": "SDG",
    "m49.ttl": "UN M49",
}
MATCHES = [SKOS.exactMatch, SKOS.closeMatch, SKOS.broadMatch, SKOS.narrowMatch, SKOS.relatedMatch]
runner = CliRunner()


def external_links(path: Path) -> list[tuple[str, str, str]]:
    graph = rdflib.Graph().parse(path)
    return sorted(
        (str(s), str(p), str(o))
        for p in MATCHES
        for s, o in graph.subject_objects(p)
        if isinstance(o, rdflib.URIRef)
    )


@pytest.mark.parametrize("name", sorted(LINK_FILES))
def test_every_link_follows_its_publishers_identifier_pattern(
    settings: Settings, name: str
) -> None:
    links = external_links(settings.data_dir / "links" / name)
    assert links, f"data/links/{name} holds no links"
    for subject, _, target in links:
        assert dataset_of(target) == LINK_FILES[name], (
            f"data/links/{name}: {subject} links to {target}, which is not a "
            f"{LINK_FILES[name]} identifier ({DATASETS[LINK_FILES[name]].pattern})"
        )


@pytest.mark.parametrize(
    ("iri", "dataset"),
    [
        ("http://www.wikidata.org/entity/Q34", "Wikidata"),
        ("https://www.wikidata.org/entity/Q34", ""),
        ("http://www.wikidata.org/wiki/Q34", ""),
        ("http://metadata.un.org/thesaurus/1003321", "UNBIS Thesaurus"),
        ("http://metadata.un.org/thesaurus#1005064", ""),
        ("http://metadata.un.org/sdg/10.7", "SDG"),
        ("http://metadata.un.org/sdg/10.c", "SDG"),
        ("http://metadata.un.org/sdg/C100701", "SDG"),
        ("http://metadata.un.org/sdg/codes/geoArea/752", "UN M49"),
        ("http://metadata.un.org/sdg/codes/geoArea/75", ""),
        ("http://data.un.org/kos/sdg/01.01", ""),
    ],
)
def test_identifier_patterns(iri: str, dataset: str) -> None:
    assert dataset_of(iri) == dataset


def test_every_link_records_confidence_and_source(kg: KnowledgeGraph) -> None:
    links = list_links(kg)
    assert len(links) == sum(
        len(external_links(kg.settings.data_dir / "links" / name)) for name in LINK_FILES
    )
    assert link_problems(links) == []
    assert {link.dataset for link in links} == set(LINK_FILES.values())


def test_a_bad_link_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad-link.ttl"
    bad.write_text(
        "<https://w3id.org/escap-kg/id/theme/refugees> "
        "<http://www.w3.org/2004/02/skos/core#exactMatch> "
        "<https://www.wikidata.org/wiki/Q131572> .\n"
    )
    links = list_links(KnowledgeGraph.load(Settings(extra_files=(bad,))))
    problems = link_problems(links)
    assert any("not the identifier form" in p for p in problems)
    assert any("no ekg:Alignment records its confidence" in p for p in problems)
    result = runner.invoke(app, ["links", "--check"], env={"ESCAP_KG_DATA_DIR": str(tmp_path)})
    assert result.exit_code != 0


def test_cli_links() -> None:
    table = runner.invoke(app, ["links"])
    assert table.exit_code == 0, table.output
    assert table.stderr == "47 link(s)\n"
    lines = table.stdout.splitlines()
    assert lines[0] == "resource\tlink\ttarget\tdataset\tconfidence"
    assert len(lines) == 1 + 47, "piped, the output is the header and one line per link"
    as_json = json.loads(runner.invoke(app, ["links", "--format", "json"]).stdout)
    sweden = [
        link
        for link in as_json
        if link["resource"].endswith("country/sweden") and link["dataset"] == "Wikidata"
    ]
    assert sweden == [
        {
            "resource": "https://w3id.org/escap-kg/id/country/sweden",
            "label": "Sweden",
            "property": "http://www.w3.org/2004/02/skos/core#exactMatch",
            "target": "http://www.wikidata.org/entity/Q34",
            "dataset": "Wikidata",
            "confidence": "high",
            "source": "https://github.com/UNStats/LOD4Stats",
        }
    ]
    assert runner.invoke(app, ["links", "--check"]).exit_code == 0
    assert runner.invoke(app, ["links", "--format", "xml"]).exit_code == 2
