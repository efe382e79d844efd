"""schema.org JSON-LD for the pages, so that search engines understand what each page is about."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyoxigraph as ox

from escap_kg.namespaces import EKG as EKG_TERM
from escap_kg.pages.data import Resource
from escap_kg.pages.terms import (
    DCTERMS,
    EKG,
    ORG,
    PROV,
    RDFS,
    SCHEMA,
    SKOS,
    dataset_of,
    safe_href,
)

Json = dict[str, Any]

#: schema.org types of the classes the ontology does not align with schema.org itself (through
#: rdfs:subClassOf, which :class:`SchemaTypes` follows): other vocabularies' classes and ours
#: that have no schema.org superclass in the ontology.
OTHER_SCHEMA_TYPES: dict[str, str] = {
    f"{ORG}FormalOrganization": "Organization",
    f"{PROV}Organization": "Organization",
    f"{SKOS}ConceptScheme": "DefinedTermSet",
    f"{SKOS}Concept": "DefinedTerm",
    str(EKG_TERM.ActorGroup): "Audience",
    str(EKG_TERM.Finding): "Claim",
    str(EKG_TERM.PlannedWork): "CreativeWork",
    str(EKG_TERM.Recommendation): "CreativeWork",
}


class SchemaTypes:
    """Which schema.org type fits a resource, read from the ontology's ``rdfs:subClassOf``
    statements (``parents``: each class's direct superclasses)."""

    def __init__(self, parents: Mapping[str, Iterable[str]]) -> None:
        self.parents = {child: sorted(set(supers)) for child, supers in parents.items()}
        self._ancestors: dict[str, frozenset[str]] = {}

    def ancestors(self, iri: str) -> frozenset[str]:
        """Every superclass of ``iri``, however far up."""
        if iri not in self._ancestors:
            found: set[str] = set()
            todo = list(self.parents.get(iri, ()))
            while todo:
                parent = todo.pop()
                if parent not in found:
                    found.add(parent)
                    todo.extend(self.parents.get(parent, ()))
            self._ancestors[iri] = frozenset(found)
        return self._ancestors[iri]

    def of_class(self, iri: str) -> str | None:
        """The schema.org type of a class: itself, or its nearest schema.org superclass."""
        level = [iri]
        seen: set[str] = set()
        while level:
            for cls in level:
                if cls.startswith(SCHEMA) and len(cls) > len(SCHEMA):
                    return cls[len(SCHEMA) :]
                if cls in OTHER_SCHEMA_TYPES:
                    return OTHER_SCHEMA_TYPES[cls]
            seen.update(level)
            level = sorted({p for cls in level for p in self.parents.get(cls, ()) if p not in seen})
        return None

    def __call__(self, types: Iterable[str]) -> str:
        """The schema.org type that fits a resource with these RDF types best: that of its most
        specific types (none of its other types is a subclass of them), ours first."""
        types = set(types)
        specific = [t for t in types if not any(t in self.ancestors(o) for o in types - {t})]
        for iri in sorted(specific, key=lambda t: (not t.startswith(EKG), t)):
            found = self.of_class(iri)
            if found is not None:
                return found
        return "Thing"


@dataclass(frozen=True)
class _Described:
    """A resource and the schema.org types of its classes, while its JSON-LD is written."""

    resource: Resource
    schema: SchemaTypes


def _literals(it: _Described, predicate: str) -> list[str]:
    return [v.value for v in it.resource.values(predicate) if isinstance(v, ox.Literal)]


def _iris(it: _Described, predicate: str) -> list[str]:
    return [v.value for v in it.resource.values(predicate) if isinstance(v, ox.NamedNode)]


def _ref(it: _Described, iri: str) -> Json:
    types = it.resource.neighbour_types.get(iri, set())
    item: Json = {"@type": it.schema(types), "@id": iri}
    if iri in it.resource.names:
        item["name"] = it.resource.names[iri]
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


def resource_jsonld(resource: Resource, page_url: str, schema: SchemaTypes) -> Json:
    """schema.org JSON-LD for a resource page: Event, Organization, Country, DefinedTerm...

    ``url`` and ``sameAs`` hold only addresses :func:`safe_href` allows.
    """
    it = _Described(resource, schema)
    kind = schema(resource.type_iris)
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
    _put(data, "sameAs", _same_as(it))
    fields = KIND_FIELDS.get(kind)
    if fields is not None:
        fields(it, data)
    comments = _literals(it, f"{RDFS}comment")
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


def _refs(it: _Described, *predicates: str) -> list[Json]:
    """References to the objects of the resource's statements with any of ``predicates``."""
    return [_ref(it, iri) for p in predicates for iri in _iris(it, p)]


def _same_as(it: _Described) -> list[str]:
    """The identifiers in other datasets that name the same thing, when safe to link."""
    same = [link.iri for link in it.resource.links if link.match == "same as"]
    same += [iri for iri in _iris(it, f"{SKOS}exactMatch") if iri not in same and dataset_of(iri)]
    return [iri for iri in same if safe_href(iri)]


def _subjects(it: _Described) -> list[Json]:
    return _refs(it, f"{DCTERMS}subject", str(EKG_TERM.keyAgendaItem), str(EKG_TERM.focus))


def _event(it: _Described, data: Json) -> None:
    _first(data, "startDate", _literals(it, f"{SCHEMA}startDate"))
    _first(data, "endDate", _literals(it, f"{SCHEMA}endDate"))
    _put(data, "organizer", _refs(it, f"{SCHEMA}organizer"))
    _put(data, "contributor", _refs(it, str(EKG_TERM.partner)))
    _put(data, "location", _refs(it, f"{SCHEMA}location", f"{DCTERMS}spatial"))
    _put(data, "superEvent", _refs(it, f"{SCHEMA}superEvent"))
    _put(data, "about", _subjects(it), many=True)


def _organization(it: _Described, data: Json) -> None:
    _put(data, "parentOrganization", _refs(it, f"{ORG}subOrganizationOf"))
    _put(data, "areaServed", _refs(it, f"{SCHEMA}areaServed"))


def _defined_term(it: _Described, data: Json) -> None:
    _put(data, "inDefinedTermSet", _refs(it, f"{SKOS}inScheme"))


def _defined_term_set(it: _Described, data: Json) -> None:
    terms = [_ref(it, iri) for iri in it.resource.subjects(f"{SKOS}inScheme")]
    _put(data, "hasDefinedTerm", sorted(terms, key=lambda t: t.get("name", "")), many=True)


def _creative_work(it: _Described, data: Json) -> None:
    _first(data, "text", _literals(it, str(EKG_TERM.statement)))
    _put(data, "about", _subjects(it), many=True)
    _put(data, "hasPart", _refs(it, f"{DCTERMS}hasPart"), many=True)
    _put(data, "isPartOf", _refs(it, f"{DCTERMS}isPartOf"))
    _first(data, "position", _literals(it, f"{SCHEMA}position"))
    _put(data, "audience", _refs(it, str(EKG_TERM.addressedTo)))


#: The properties each schema.org type adds to the common ones (name, description, sameAs).
KIND_FIELDS: dict[str, Callable[[_Described, Json], None]] = {
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


__all__ = [
    "OTHER_SCHEMA_TYPES",
    "SchemaTypes",
    "add_addresses",
    "dataset_jsonld",
    "resource_jsonld",
]
