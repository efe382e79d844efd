"""schema.org JSON-LD for the pages, so that search engines understand what each page is about."""

from __future__ import annotations

from typing import Any

import pyoxigraph as ox

from escap_kg.pages.data import Resource
from escap_kg.pages.terms import DCTERMS, EKG, ORG, PROV, RDFS, SCHEMA, SKOS, dataset_of, safe_href

Json = dict[str, Any]

# Our classes (and reused ones) as schema.org types, most specific first.
SCHEMA_TYPES: tuple[tuple[str, str], ...] = (
    (f"{EKG}Conference", "Event"),
    (f"{EKG}ExpertGroupMeeting", "Event"),
    (f"{EKG}Seminar", "Event"),
    (f"{EKG}Activity", "Event"),
    (f"{SCHEMA}EventSeries", "EventSeries"),
    (f"{EKG}Country", "Country"),
    (f"{ORG}FormalOrganization", "Organization"),
    (f"{PROV}Organization", "Organization"),
    (f"{EKG}ActorGroup", "Audience"),
    (f"{EKG}PlanOfAction", "CreativeWork"),
    (f"{EKG}Recommendation", "CreativeWork"),
    (f"{EKG}PlannedWork", "CreativeWork"),
    (f"{EKG}Finding", "Claim"),
    (f"{EKG}MeetingReport", "Report"),
    (f"{EKG}BackgroundPaper", "CreativeWork"),
    (f"{EKG}Document", "CreativeWork"),
    (f"{EKG}SourceDocument", "CreativeWork"),
    (f"{EKG}SourceParagraph", "CreativeWork"),
    (f"{EKG}Region", "Place"),
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
    if resource.alt_labels:
        data["alternateName"] = _one_or_many(resource.alt_labels)
    texts = [value.text for _, value in resource.texts]
    if texts:
        data["description"] = " ".join(texts)
    same = [link.iri for link in resource.links if link.match == "same as"]
    same += [
        iri for iri in _iris(resource, f"{SKOS}exactMatch") if iri not in same and dataset_of(iri)
    ]
    same = [iri for iri in same if safe_href(iri)]
    if same:
        data["sameAs"] = _one_or_many(same)
    subjects = [
        _ref(resource, iri)
        for p in (f"{DCTERMS}subject", f"{EKG}keyAgendaItem", f"{EKG}focus")
        for iri in _iris(resource, p)
    ]
    if kind == "Event":
        for name, p in (("startDate", f"{SCHEMA}startDate"), ("endDate", f"{SCHEMA}endDate")):
            values = _literals(resource, p)
            if values:
                data[name] = values[0]
        organizers = [_ref(resource, iri) for iri in _iris(resource, f"{SCHEMA}organizer")]
        if organizers:
            data["organizer"] = _one_or_many(organizers)
        partners = [_ref(resource, iri) for iri in _iris(resource, f"{EKG}partner")]
        if partners:
            data["contributor"] = _one_or_many(partners)
        places = [_ref(resource, iri) for iri in _iris(resource, f"{SCHEMA}location")]
        places += [_ref(resource, iri) for iri in _iris(resource, f"{DCTERMS}spatial")]
        if places:
            data["location"] = _one_or_many(places)
        series = [_ref(resource, iri) for iri in _iris(resource, f"{SCHEMA}superEvent")]
        if series:
            data["superEvent"] = _one_or_many(series)
        if subjects:
            data["about"] = subjects
    elif kind in ("Organization", "Country"):
        parents = [
            _ref(resource, iri) for p in (f"{ORG}subOrganizationOf",) for iri in _iris(resource, p)
        ]
        if parents:
            data["parentOrganization"] = _one_or_many(parents)
        served = [_ref(resource, iri) for iri in _iris(resource, f"{SCHEMA}areaServed")]
        if served:
            data["areaServed"] = _one_or_many(served)
    elif kind == "DefinedTerm":
        schemes = [_ref(resource, iri) for iri in _iris(resource, f"{SKOS}inScheme")]
        if schemes:
            data["inDefinedTermSet"] = _one_or_many(schemes)
    elif kind == "DefinedTermSet":
        terms = [_ref(resource, iri) for iri in resource.subjects(f"{SKOS}inScheme")]
        if terms:
            data["hasDefinedTerm"] = sorted(terms, key=lambda t: t.get("name", ""))
    elif kind in ("CreativeWork", "Claim", "Report"):
        statements = _literals(resource, f"{EKG}statement")
        if statements:
            data["text"] = statements[0]
        if subjects:
            data["about"] = subjects
        parts = [_ref(resource, iri) for iri in _iris(resource, f"{DCTERMS}hasPart")]
        if parts:
            data["hasPart"] = parts
        wholes = [_ref(resource, iri) for iri in _iris(resource, f"{DCTERMS}isPartOf")]
        if wholes:
            data["isPartOf"] = _one_or_many(wholes)
        positions = _literals(resource, f"{SCHEMA}position")
        if positions:
            data["position"] = positions[0]
        audience = [_ref(resource, iri) for iri in _iris(resource, f"{EKG}addressedTo")]
        if audience:
            data["audience"] = _one_or_many(audience)
    comments = _literals(resource, f"{RDFS}comment")
    if comments and "description" not in data:
        data["description"] = comments[0]
    return data


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
