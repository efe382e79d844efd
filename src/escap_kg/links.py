"""Links to other UN datasets: each with its target dataset, confidence and source, checked."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyoxigraph as ox

from escap_kg.store import KnowledgeGraph


@dataclass(frozen=True)
class LinkedDataset:
    """A dataset we link to: its key (in VoID linkset names), its name, the word shown before
    one of its identifiers, the namespace of its IRIs, its home page (for VoID), and the form
    its publisher gives identifiers."""

    key: str
    name: str
    short: str
    namespace: str
    landing: str
    pattern: re.Pattern[str]


#: The datasets we link to (the one table of them: the pages, VoID and ``links`` read it).
LINKED_DATASETS: tuple[LinkedDataset, ...] = (
    LinkedDataset(
        "wikidata",
        "Wikidata",
        "Wikidata",
        "http://www.wikidata.org/entity/",
        "https://www.wikidata.org/",
        re.compile(r"^http://www\.wikidata\.org/entity/Q[1-9]\d*$"),
    ),
    LinkedDataset(
        "unbis",
        "UNBIS Thesaurus",
        "UNBIS Thesaurus",
        "http://metadata.un.org/thesaurus/",
        "http://metadata.un.org/thesaurus/",
        re.compile(r"^http://metadata\.un\.org/thesaurus/\d{7}$"),
    ),
    LinkedDataset(
        "m49",
        "UN M49",
        "UN M49 area",
        "http://metadata.un.org/sdg/codes/geoArea/",
        "https://unstats.un.org/unsd/methodology/m49/",
        re.compile(r"^http://metadata\.un\.org/sdg/codes/geoArea/\d{3}$"),
    ),
    LinkedDataset(
        "sdg",
        "SDG",
        "SDG",
        "http://metadata.un.org/sdg/",
        "http://metadata.un.org/sdg/",
        re.compile(
            r"^http://metadata\.un\.org/sdg/"
            r"(?:\d{1,2}|\d{1,2}\.(?:\d{1,2}|[a-z])|C\d{6}|[A-Z][A-Z0-9_]+)$"
        ),
    ),
)
#: The identifier form of each dataset we link to, by name.
DATASETS: dict[str, re.Pattern[str]] = {d.name: d.pattern for d in LINKED_DATASETS}

LINKS_QUERY = """
PREFIX dcterms: <http://purl.org/dc/terms/>
PREFIX ekg: <https://w3id.org/escap-kg/ontology#>
PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
SELECT DISTINCT ?resource ?label ?property ?target ?confidence ?source WHERE {
  VALUES ?property { skos:exactMatch skos:closeMatch skos:broadMatch skos:narrowMatch
                     skos:relatedMatch }
  ?resource ?property ?target .
  FILTER(isIRI(?target) && !STRSTARTS(STR(?target), $BASE))
  OPTIONAL { ?resource rdfs:label ?label }
  OPTIONAL {
    ?alignment a ekg:Alignment ; rdf:subject ?resource ; rdf:predicate ?property ;
      rdf:object ?target .
    OPTIONAL { ?alignment ekg:confidence/skos:prefLabel ?confidence }
    OPTIONAL { ?alignment dcterms:source ?source }
  }
}
ORDER BY ?resource ?property ?target
"""


@dataclass(frozen=True)
class Link:
    """One link from our resource to another dataset's."""

    resource: str
    label: str
    property: str
    target: str
    dataset: str
    confidence: str
    source: str


def dataset_of(iri: str) -> str:
    """The name of the dataset whose identifier pattern ``iri`` follows, or an empty string."""
    for name, pattern in DATASETS.items():
        if pattern.match(iri):
            return name
    return ""


def list_links(kg: KnowledgeGraph) -> list[Link]:
    """Every link to another dataset, with its dataset, confidence and source."""
    # The base is a checked setting; written as an escaped literal, it cannot change the query.
    result = kg.query(LINKS_QUERY.replace("$BASE", str(ox.Literal(kg.settings.base_iri))))
    if not isinstance(result, ox.QuerySolutions):
        raise TypeError("the links query must be a SELECT")
    links = []
    for row in result:
        values = {
            name: "" if row[name] is None else str(row[name].value)
            for name in ("resource", "label", "property", "target", "confidence", "source")
        }
        links.append(Link(dataset=dataset_of(values["target"]), **values))
    return links


def link_problems(links: list[Link]) -> list[str]:
    """What is wrong with the links: an unknown identifier form, no confidence, no source."""
    problems = []
    for link in links:
        where = f"{link.resource} {link.property} {link.target}"
        if not link.dataset:
            problems.append(f"{where}: not the identifier form of any dataset we link to")
        if not link.confidence:
            problems.append(f"{where}: no ekg:Alignment records its confidence")
        if not link.source:
            problems.append(f"{where}: no ekg:Alignment records its source")
    return problems
