"""A seeded generator of synthetic activities in the escap-kg ontology, written as N-Triples.

``python -m tests.benchmarks.generate --triples 100000 --seed 1 --out FILE.nt``

The data is written as it is made (memory does not grow with the size) and, loaded beside the
embedded graph, is valid against ``ontology/shapes.ttl`` and ``queries/checks``: every activity has
a kind, a label, a start date at mixed precision, organisers and partners recorded both directly
and as ``ekg:Participation`` with a role of ``ontology/vocabularies.ttl``, themes of
``ontology/themes.ttl``, follow-up and preparatory links forming chains, findings and, for
conferences, a plan of action with recommendations. Organisations and countries are minted too.
The same seed and size give the same bytes.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pyoxigraph as ox

from escap_kg.paths import ontology_dir

ID = "https://w3id.org/escap-kg/id/"
EKG = "https://w3id.org/escap-kg/ontology#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SKOS = "http://www.w3.org/2004/02/skos/core#"
SCHEMA = "https://schema.org/"
PROV = "http://www.w3.org/ns/prov#"
DCTERMS = "http://purl.org/dc/terms/"
ORG = "http://www.w3.org/ns/org#"
XSD = "http://www.w3.org/2001/XMLSchema#"

KINDS = ("Conference", "ExpertGroupMeeting", "Seminar")
KIND_WORDS = {
    "Conference": "Benchmark conference",
    "ExpertGroupMeeting": "Benchmark expert group meeting",
    "Seminar": "Benchmark seminar",
}
CITIES = (
    "Almaty", "Apia", "Bangkok", "Beijing", "Colombo", "Dhaka", "Dili", "Hanoi", "Islamabad",
    "Jakarta", "Kabul", "Kathmandu", "Kuala Lumpur", "Manila", "Male", "Nadi", "New Delhi",
    "Noumea", "Phnom Penh", "Port Moresby", "Seoul", "Suva", "Tashkent", "Thimphu", "Tokyo",
    "Ulaanbaatar", "Vientiane", "Yangon",
)  # fmt: skip
# Resources of the embedded graph that generated data links to.
GOVERNMENTS = ID + "actor-group/governments"
ESCAP_REGION = ID + "region/escap-region"
ROLES = ("organiser", "joint-organiser", "cooperation-partner")
ROLE_LABELS = {
    "organiser": "organiser",
    "joint-organiser": "joint organiser",
    "cooperation-partner": "partner in cooperation",
}
# The selective benchmark queries name these; the generator makes sure they hold at every size.
FIRST_CHAIN_LENGTH = 12
PINNED_PARTNER_ACTIVITIES = 3


@dataclass(frozen=True)
class Theme:
    """A concept of the themes scheme: its IRI and preferred label."""

    iri: str
    label: str


def load_themes(path: Path | None = None) -> list[Theme]:
    """The themes of ``ontology/themes.ttl``, sorted by IRI."""
    path = path or ontology_dir() / "themes.ttl"
    in_scheme = ox.NamedNode(SKOS + "inScheme")
    pref = ox.NamedNode(SKOS + "prefLabel")
    themes = ox.NamedNode(ID + "scheme/themes")
    triples = list(ox.parse(path=str(path), format=ox.RdfFormat.TURTLE))
    labels = {
        t.subject.value: t.object.value
        for t in triples
        if t.predicate == pref and isinstance(t.object, ox.Literal)
    }
    iris = sorted(
        t.subject.value for t in triples if t.predicate == in_scheme and t.object == themes
    )
    return [Theme(iri, labels[iri]) for iri in iris]


def check_roles(path: Path | None = None) -> None:
    """Fail early if ``ontology/vocabularies.ttl`` no longer has the roles the data uses."""
    path = path or ontology_dir() / "vocabularies.ttl"
    subjects = {t.subject.value for t in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE)}
    missing = [r for r in ROLES if ID + "role/" + r not in subjects]
    if missing:
        raise SystemExit(f"{path}: roles {', '.join(missing)} are missing")


def _iri(value: str) -> str:
    return f"<{value}>"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def _en(text: str) -> str:
    return f'"{_escape(text)}"@en'


def _typed(text: str, datatype: str) -> str:
    return f'"{_escape(text)}"^^<{XSD}{datatype}>'


class Writer:
    """Writes N-Triples lines and counts them."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0

    def add(self, subject: str, predicate: str, obj: str) -> None:
        self.out.write(f"<{subject}> <{predicate}> {obj} .\n")
        self.count += 1

    def link(self, subject: str, predicate: str, obj: str) -> None:
        self.add(subject, predicate, _iri(obj))


@dataclass(frozen=True)
class Agent:
    """An organization or a government of the generated data."""

    iri: str
    label: str


def pool_sizes(triples: int) -> tuple[int, int]:
    """How many organisations and countries to mint for a target size."""
    organisations = max(20, triples // 500)
    countries = max(10, min(300, triples // 5000))
    return organisations, countries


def _agents(w: Writer, triples: int) -> tuple[list[Agent], list[Agent]]:
    organisations, countries = pool_sizes(triples)
    orgs = []
    for n in range(1, organisations + 1):
        agent = Agent(f"{ID}organization/bench-organization-{n:05d}", f"Benchmark Organisation {n}")
        w.link(agent.iri, RDF_TYPE, ORG + "FormalOrganization")
        w.link(agent.iri, RDF_TYPE, PROV + "Organization")
        w.link(agent.iri, RDF_TYPE, SCHEMA + "Organization")
        w.add(agent.iri, RDFS_LABEL, _en(agent.label))
        w.add(agent.iri, SKOS + "prefLabel", _en(agent.label))
        orgs.append(agent)
    # A country is a place; what takes part in an activity is its government.
    governments = []
    for n in range(1, countries + 1):
        country = f"{ID}country/bench-country-{n:03d}"
        w.link(country, RDF_TYPE, EKG + "Country")
        w.add(country, RDFS_LABEL, _en(f"Benchmark Country {n}"))
        agent = Agent(
            f"{ID}organization/bench-government-{n:03d}", f"Government of Benchmark Country {n}"
        )
        w.link(agent.iri, RDF_TYPE, ORG + "FormalOrganization")
        w.link(agent.iri, RDF_TYPE, PROV + "Organization")
        w.link(agent.iri, RDF_TYPE, SCHEMA + "GovernmentOrganization")
        w.add(agent.iri, RDFS_LABEL, _en(agent.label))
        w.add(agent.iri, SKOS + "prefLabel", _en(agent.label))
        w.link(agent.iri, SCHEMA + "areaServed", country)
        governments.append(agent)
    return orgs, governments


def _date(rng: random.Random) -> tuple[str, str | None]:
    """A start date at year, month or day precision, and an end date for day-precise ones."""
    year = rng.randint(1990, 2024)
    precision = rng.randrange(3)
    if precision == 0:
        return _typed(str(year), "gYear"), None
    month = rng.randint(1, 12)
    if precision == 1:
        return _typed(f"{year}-{month:02d}", "gYearMonth"), None
    day = rng.randint(1, 22)
    start = _typed(f"{year}-{month:02d}-{day:02d}", "date")
    end = None
    if rng.random() < 0.5:
        end = _typed(f"{year}-{month:02d}-{day + rng.randint(0, 6):02d}", "date")
    return start, end


def _chains(rng: random.Random) -> Iterator[int]:
    """The length of each follow-up chain: the first is long, the rest 1 to 15 activities."""
    yield FIRST_CHAIN_LENGTH
    while True:
        yield rng.randint(1, 15)


def generate(out: TextIO, triples: int, seed: int) -> int:
    """Write about ``triples`` N-Triples (within one activity's worth) to ``out``; return the count.

    Activities are written one after another, each with everything that belongs to it, until the
    next would overshoot the target by more than it undershoots it.
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    themes = load_themes()
    check_roles()
    w = Writer(out)
    orgs, countries = _agents(w, triples)
    chains = _chains(rng)
    left_in_chain = next(chains)
    previous: str | None = None
    number = 0
    average = 36
    while w.count + average // 2 < triples:
        number += 1
        if left_in_chain == 0:
            left_in_chain, previous = next(chains), None
        current = _activity(w, rng, number, themes, orgs, countries, previous)
        previous = current
        left_in_chain -= 1
        average = max(1, (w.count - len(orgs) * 4 - len(countries) * 3) // number)
    return w.count


def _activity(
    w: Writer,
    rng: random.Random,
    number: int,
    themes: list[Theme],
    orgs: list[Agent],
    countries: list[Agent],
    previous: str | None,
) -> str:
    slug = f"bench-activity-{number:06d}"
    iri = f"{ID}activity/{slug}"
    kind = KINDS[rng.randrange(len(KINDS))]
    subjects = rng.sample(themes, rng.randint(1, 3))
    city = CITIES[rng.randrange(len(CITIES))]
    label = f"{KIND_WORDS[kind]} {number:06d} on {subjects[0].label}, {city}"
    short = f"benchmark activity {number:06d}"
    w.link(iri, RDF_TYPE, EKG + kind)
    w.add(iri, RDFS_LABEL, _en(label))
    if rng.random() < 0.5:
        w.add(iri, SCHEMA + "name", _en(f"{subjects[0].label.capitalize()} in {city}"))
    start, end = _date(rng)
    w.add(iri, SCHEMA + "startDate", start)
    if end is not None:
        w.add(iri, SCHEMA + "endDate", end)
    for theme in subjects:
        w.link(iri, DCTERMS + "subject", theme.iri)
    if rng.random() < 0.2:
        w.link(iri, DCTERMS + "spatial", ESCAP_REGION)
    if kind == "Conference":
        w.link(iri, EKG + "keyAgendaItem", themes[rng.randrange(len(themes))].iri)
    elif kind == "Seminar":
        w.add(iri, EKG + "keyIssue", _en(f"How {subjects[-1].label} plays out in {city}."))
    else:
        w.add(iri, EKG + "isAdHoc", _typed("true" if rng.random() < 0.5 else "false", "boolean"))
    if previous is not None:
        if rng.random() < 0.7:
            w.link(iri, EKG + "followUpOf", previous)
        else:
            w.link(previous, EKG + "preparatoryTo", iri)

    # The first activities have organisation 1 as partner, which the partner lookup asks for.
    pinned = [orgs[0]] if number <= PINNED_PARTNER_ACTIVITIES else []
    organisers = rng.sample(orgs[len(pinned) :], 1 if rng.random() < 0.7 else 2)
    role = "organiser" if len(organisers) == 1 else "joint-organiser"
    taken = {a.iri for a in organisers + pinned}
    drawn = rng.sample(orgs + countries, rng.choice((0, 1, 1, 2)))
    partners = pinned + [a for a in drawn if a.iri not in taken]
    for n, agent in enumerate(organisers, start=1):
        w.link(iri, SCHEMA + "organizer", agent.iri)
        _participation(w, iri, f"{slug}-organiser-{n}", agent, role, short)
    for n, agent in enumerate(partners, start=1):
        w.link(iri, EKG + "partner", agent.iri)
        _participation(w, iri, f"{slug}-partner-{n}", agent, "cooperation-partner", short)

    for n in range(1, rng.choice((0, 1, 1, 2)) + 1):
        finding = f"{ID}finding/{slug}-{n}"
        theme = themes[rng.randrange(len(themes))]
        w.link(iri, EKG + "noted", finding)
        w.link(finding, RDF_TYPE, EKG + "Finding")
        w.add(finding, RDFS_LABEL, _en(f"Finding {n} of {short} on {theme.label}"))
        w.add(finding, EKG + "statement", _en(f"The meeting in {city} noted {theme.label}."))
        w.link(finding, DCTERMS + "subject", theme.iri)
        w.add(finding, SCHEMA + "position", _typed(str(n), "integer"))

    if kind == "Conference":
        plan = f"{ID}plan/{slug}"
        w.link(plan, RDF_TYPE, EKG + "PlanOfAction")
        w.add(plan, RDFS_LABEL, _en(f"Plan of action of {short}"))
        w.link(plan, EKG + "adoptedAt", iri)
        w.link(plan, EKG + "addressedTo", GOVERNMENTS)
        w.link(plan, DCTERMS + "subject", subjects[0].iri)
        for n in range(1, rng.randint(1, 3) + 1):
            rec = f"{ID}recommendation/{slug}-{n}"
            theme = themes[rng.randrange(len(themes))]
            w.link(plan, DCTERMS + "hasPart", rec)
            w.link(rec, RDF_TYPE, EKG + "Recommendation")
            w.add(rec, RDFS_LABEL, _en(f"Recommendation {n} of {short} on {theme.label}"))
            w.link(rec, DCTERMS + "isPartOf", plan)
            w.add(rec, EKG + "statement", _en(f"Act on {theme.label} across the region."))
            w.link(rec, DCTERMS + "subject", theme.iri)
            w.add(rec, SCHEMA + "position", _typed(str(n), "integer"))
    return iri


def _participation(
    w: Writer, activity: str, slug: str, agent: Agent, role: str, short: str
) -> None:
    iri = f"{ID}participation/{slug}"
    w.link(activity, PROV + "qualifiedAssociation", iri)
    w.link(iri, RDF_TYPE, EKG + "Participation")
    w.add(iri, RDFS_LABEL, _en(f"{agent.label} as {ROLE_LABELS[role]} of {short}"))
    w.link(iri, PROV + "agent", agent.iri)
    w.link(iri, PROV + "hadRole", f"{ID}role/{role}")


def parse_size(text: str) -> int:
    """``10000``, ``10k`` or ``1M`` as a number of triples."""
    text = text.strip().lower().replace("_", "")
    factor = 1
    if text.endswith("k"):
        factor, text = 1_000, text[:-1]
    elif text.endswith("m"):
        factor, text = 1_000_000, text[:-1]
    try:
        value = int(float(text) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 1000:
        raise argparse.ArgumentTypeError("ask for at least 1000 triples")
    return value


def write_file(path: Path, triples: int, seed: int) -> int:
    """Generate into ``path`` (through a ``.part`` file, so a cut-off run leaves nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with part.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        count = generate(out, triples, seed)
    part.replace(path)
    return count


def main(argv: list[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.generate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--triples", type=parse_size, default=10_000, help="10000, 100k, 1M")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="N-Triples file (default: standard output)")
    args = parser.parse_args(argv)
    if args.out is None:
        count = generate(sys.stdout, args.triples, args.seed)
    else:
        count = write_file(args.out, args.triples, args.seed)
    print(f"wrote {count:,} triples (asked for {args.triples:,})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
