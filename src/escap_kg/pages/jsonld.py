"""schema.org JSON-LD for the pages, so that search engines understand what each page is about."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyoxigraph as ox

from escap_kg.namespaces import EKG as EKG_TERM
from escap_kg.pages.data import Resource
from escap_kg.pages.terms import DCTERMS, ORG, PROV, RDFS, SCHEMA, SKOS, dataset_of, safe_href

Json = dict[str, Any]

# Our classes (and reused ones) as schema.org types, most specific first.
SCHEMA_TYPES: tuple[tuple[str, str], ...] = (
    (str(EKG_TERM.Conference), "Event"),
    (str(EKG_TERM.ExpertGroupMeeting), "Event"),
    (str(EKG_TERM.Seminar), "Event"),
    (str(EKG_TERM.Activity), "Event"),
    (f"{SCHEMA}EventSeries", "EventSeries"),
    (str(EKG_TERM.Country), "Country"),
    (f"{ORG}FormalOrganization", "Organization"),
    (f"{PROV}Organization", "Organization"),
    (str(EKG_TERM.ActorGroup), "Audience"),
    (str(EKG_TERM.PlanOfAction), "CreativeWork"),
    (str(EKG_TERM.Recommendation), "CreativeWork"),
    (str(EKG_TERM.PlannedWork), "CreativeWork"),
    (str(EKG_TERM.Finding), "Claim"),
    (str(EKG_TERM.MeetingReport), "Report"),
    (str(EKG_TERM.BackgroundPaper), "CreativeWork"),
    (str(EKG_TERM.Document), "CreativeWork"),
    (str(EKG_TERM.SourceDocument), "CreativeWork"),
    (str(EKG_TERM.SourceParagraph), "CreativeWork"),
    (str(EKG_TERM.Region), "Place"),
    (f"{SCHEMA}Place", "Place"),
    (f"{SCHEMA}WebPage", "WebPage"),
    (f"{SKOS}ConceptScheme", "DefinedTermSet"),
    (f"{SKOS}Concept", "DefinedTerm"),
)


def schema_type(types: list[str] | set[str]) -> str:
    """The schema.org type that fits a resource with these RDF types best."""
    for iri, name in SCHEMA_TYPES:
        if iri in types:
            return name
    return "Thing"


def _literals(resource: Resource, predicate: str) -> list[str]:
    return [v.value for v in resource.values(predicate) if isinstance(v, ox.Literal)]


def _iris(resource: Resource, predicate: str) -> list[str]:
    return [v.value for v in resource.values(predicate) if isinstance(v, ox.NamedNode)]


def _ref(resource: Resource, iri: str) -> Json:
    types = resource.neighbour_types.get(iri, set())
    item: Json = {"@type": schema_type(types), "@id": iri}
    if iri in resource.names:
        item["name"] = resource.names[iri]
    return item


def _one_or_many(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else items


def add_addresses(data: Json, **addresses: str | None) -> Json:
    """``data`` with each address (``url``, ``license``...) that :func:`safe_href` allows; an
    address that is missing or not safe to link is left out."""
    for key, address in addresses.items():
        href = safe_href(address)
        if href is not None:
            data[key] = href
    return data


def resource_jsonld(resource: Resource, page_url: str) -> Json:
    """schema.org JSON-LD for a resource page: Event, Organization, Country, DefinedTerm...

    ``url`` and ``sameAs`` hold only addresses :func:`safe_href` allows.
    """
    kind = schema_type(resource.type_iris)
    data: Json = {
        "@context": "https://schema.org",
        "@type": kind,
        "@id": resource.iri,
        "name": resource.label,
    }
    add_addresses(data, url=page_url)
    _put(data, "alternateName", resource.alt_labels)
    texts = [value.text for _, value in resource.texts]
    if texts:
        data["description"] = " ".join(texts)
    _put(data, "sameAs", _same_as(resource))
    fields = KIND_FIELDS.get(kind)
    if fields is not None:
        fields(resource, data)
    comments = _literals(resource, f"{RDFS}comment")
    if comments and "description" not in data:
        data["description"] = comments[0]
    return data


def _put(data: Json, key: str, items: list[Any], many: bool = False) -> None:
    """``data[key]``: the one item or the list (always a list when ``many``); nothing if empty."""
    if items:
        data[key] = items if many else _one_or_many(items)


def _first(data: Json, key: str, values: list[str]) -> None:
    if values:
        data[key] = values[0]


def _refs(resource: Resource, *predicates: str) -> list[Json]:
    """References to the objects of the resource's statements with any of ``predicates``."""
    return [_ref(resource, iri) for p in predicates for iri in _iris(resource, p)]


def _same_as(resource: Resource) -> list[str]:
    """The identifiers in other datasets that name the same thing, when safe to link."""
    same = [link.iri for link in resource.links if link.match == "same as"]
    same += [
        iri for iri in _iris(resource, f"{SKOS}exactMatch") if iri not in same and dataset_of(iri)
    ]
    return [iri for iri in same if safe_href(iri)]


def _subjects(resource: Resource) -> list[Json]:
    return _refs(resource, f"{DCTERMS}subject", str(EKG_TERM.keyAgendaItem), str(EKG_TERM.focus))


def _event(resource: Resource, data: Json) -> None:
    _first(data, "startDate", _literals(resource, f"{SCHEMA}startDate"))
    _first(data, "endDate", _literals(resource, f"{SCHEMA}endDate"))
    _put(data, "organizer", _refs(resource, f"{SCHEMA}organizer"))
    _put(data, "contributor", _refs(resource, str(EKG_TERM.partner)))
    _put(data, "location", _refs(resource, f"{SCHEMA}location", f"{DCTERMS}spatial"))
    _put(data, "superEvent", _refs(resource, f"{SCHEMA}superEvent"))
    _put(data, "about", _subjects(resource), many=True)


def _organization(resource: Resource, data: Json) -> None:
    _put(data, "parentOrganization", _refs(resource, f"{ORG}subOrganizationOf"))
    _put(data, "areaServed", _refs(resource, f"{SCHEMA}areaServed"))


def _defined_term(resource: Resource, data: Json) -> None:
    _put(data, "inDefinedTermSet", _refs(resource, f"{SKOS}inScheme"))


def _defined_term_set(resource: Resource, data: Json) -> None:
    terms = [_ref(resource, iri) for iri in resource.subjects(f"{SKOS}inScheme")]
    _put(data, "hasDefinedTerm", sorted(terms, key=lambda t: t.get("name", "")), many=True)


def _creative_work(resource: Resource, data: Json) -> None:
    _first(data, "text", _literals(resource, str(EKG_TERM.statement)))
    _put(data, "about", _subjects(resource), many=True)
    _put(data, "hasPart", _refs(resource, f"{DCTERMS}hasPart"), many=True)
    _put(data, "isPartOf", _refs(resource, f"{DCTERMS}isPartOf"))
    _first(data, "position", _literals(resource, f"{SCHEMA}position"))
    _put(data, "audience", _refs(resource, str(EKG_TERM.addressedTo)))


#: The properties each schema.org type adds to the common ones (name, description, sameAs).
KIND_FIELDS: dict[str, Callable[[Resource, Json], None]] = {
    "Event": _event,
    "Organization": _organization,
    "Country": _organization,
    "DefinedTerm": _defined_term,
    "DefinedTermSet": _defined_term_set,
    "CreativeWork": _creative_work,
    "Claim": _creative_work,
    "Report": _creative_work,
}


def dataset_jsonld(
    page_url: str, description: str, counts: dict[str, int], downloads: list[tuple[str, str]]
) -> Json:
    """schema.org Dataset for the home page: what, when, where, licence and downloads."""
    data: Json = {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": "escap-kg: ESCAP's work on international migration, 2001-2003",
        "description": description,
    }
    add_addresses(data, url=page_url, license="https://creativecommons.org/licenses/by/4.0/")
    return data | {
        "temporalCoverage": "2001/2003",
        "spatialCoverage": {"@type": "Place", "name": "Asia and the Pacific"},
        "keywords": ["international migration", "ESCAP", "United Nations", "knowledge graph"],
        "creator": {"@type": "Organization", "name": "escap-kg maintainers"},
        "variableMeasured": [
            {"@type": "PropertyValue", "name": name, "value": value}
            for name, value in counts.items()
        ],
        "distribution": [
            {"@type": "DataDownload", "encodingFormat": media, "contentUrl": url}
            for url, media in downloads
        ],
    }


__all__ = ["add_addresses", "dataset_jsonld", "resource_jsonld", "schema_type"]
