"""README.md and docs/ stay true: their SPARQL runs, links resolve, the module map is whole."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyoxigraph as ox
import pytest

from escap_kg.queries import QueryError, run
from escap_kg.store import KnowledgeGraph

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

ID = "https://w3id.org/escap-kg/id/"
XSD = "http://www.w3.org/2001/XMLSchema#"

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
EXAMPLE = re.compile(r"^\s*<!-- example: (?P<name>[a-z0-9-]+) -->\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6} +(?P<text>.+?) *#*$")


@dataclass(frozen=True)
class Block:
    """One ```sparql block of a page: where it is, its text, and its example name if any."""

    page: Path
    line: int
    text: str
    example: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def sparql_blocks(page: Path) -> list[Block]:
    """The ```sparql blocks of a Markdown page, dedented (blocks inside list items too); a block
    right after an ``<!-- example: name -->`` comment carries that name."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").split("\n")
    pending: str | None = None
    i = 0
    while i < len(lines):
        if m := EXAMPLE.match(lines[i]):
            pending = m["name"]
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, start = fence["indent"], i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].rstrip() != f"{indent}```":
            body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1
        if fence["lang"] == "sparql":
            blocks.append(Block(page, start + 1, "\n".join(body) + "\n", pending))
            pending = None
    return blocks


BLOCKS = [block for page in PAGES for block in sparql_blocks(page)]
EXAMPLES = {block.example: block for block in BLOCKS if block.example}


def rows(kg: KnowledgeGraph, block: Block) -> list[dict[str, ox.NamedNode | ox.Literal | None]]:
    """The answer of a SELECT block as one dict per row (unbound variables as None)."""
    result = run(kg, block.text)
    assert isinstance(result, ox.QuerySolutions), f"{block.where}: not a SELECT query"
    names = [v.value for v in result.variables]
    return [{name: solution[name] for name in names} for solution in result]


def value(term: object) -> str | None:
    return None if term is None else term.value


def test_the_pages_hold_sparql() -> None:
    # The README's researcher's guide has its five worked examples and the lookup table query.
    in_readme = [b for b in BLOCKS if b.page.name == "README.md"]
    assert len(in_readme) >= 7, [b.where for b in in_readme]


@pytest.fixture(scope="module")
def served(kg: KnowledgeGraph) -> KnowledgeGraph:
    """The graph as the endpoint and ``escap-kg query`` answer from it: with the entailed graph."""
    from escap_kg import entailment

    store = ox.Store()
    store.extend(kg.store)
    entailment.refresh(store, entailment.entailed_graph(kg.settings.base_iri))
    return KnowledgeGraph(store, kg.files, kg.settings)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_every_sparql_block_runs_and_answers(served: KnowledgeGraph, block: Block) -> None:
    kg = served
    try:
        result = run(kg, block.text)
    except QueryError as err:
        pytest.fail(f"{block.where}: the query does not run: {err}")
    if isinstance(result, ox.QueryBoolean):
        assert bool(result), f"{block.where}: the ASK query answers false"
    else:
        assert list(result), f"{block.where}: the query returns nothing on the embedded graph"


def test_every_block_declares_its_prefixes() -> None:
    # Written in full, so they run unchanged in an endpoint that knows none of our prefixes.
    for block in BLOCKS:
        text = re.sub(r'"[^"\n]*"|<[^>\s]*>', "", block.text)
        declared = set(re.findall(r"^PREFIX (\w*):", block.text, flags=re.MULTILINE))
        used = set(re.findall(r"(?<![\w?$])([a-zA-Z]\w*):[\w-]", text)) - {"http", "https"}
        assert used <= declared, f"{block.where}: declare {sorted(used - declared)}"


def _activities_in_time_order(answer: list[dict]) -> None:
    assert [value(r["activity"]) for r in answer] == [
        f"{ID}activity/egm-2001-migration-and-development",
        f"{ID}activity/seminar-2002-gender-equality-trafficking",
        f"{ID}activity/fifth-appc",
        f"{ID}activity/egm-2003-international-migration-and-development",
    ]
    appc = answer[2]
    assert value(appc["label"]) == "Fifth Asian and Pacific Population Conference"
    assert value(appc["kind"]) == "conference"
    assert (value(appc["start"]), value(appc["end"])) == ("2002-12-11", "2002-12-17")
    assert appc["start"].datatype.value == f"{XSD}date"
    # Dates keep the source's precision: a year, a month, a day.
    assert [r["start"].datatype.value for r in answer] == [
        f"{XSD}gYear",
        f"{XSD}gYearMonth",
        f"{XSD}date",
        f"{XSD}gYear",
    ]


def _roles_in_activities(answer: list[dict]) -> None:
    found = {
        (value(r["activityLabel"]), value(r["agent"]), value(r["role"]), value(r["broaderRole"]))
        for r in answer
    }
    appc = "Fifth Asian and Pacific Population Conference"
    seminar = "Seminar on Promoting Gender Equality to Combat Trafficking in Women and Children"
    assert (appc, f"{ID}organization/unfpa", "joint organizer", "organizer") in found
    assert (appc, f"{ID}organization/escap", "joint organizer", "organizer") in found
    government = f"{ID}organization/government-of-sweden"
    assert (seminar, government, "partner in cooperation", None) in found
    assert (seminar, f"{ID}organization/unifem", "partner in cooperation", None) in found
    # The roles a news report gives, which differ from the source document's, are there too.
    assert (seminar, f"{ID}organization/unifem", "co-convener", None) in found
    assert (seminar, f"{ID}organization/escap", "supporter", None) in found
    assert len(answer) == 10


def _themes_of_fifth_appc(answer: list[dict]) -> None:
    how = {value(r["theme"]).removeprefix(f"{ID}theme/"): value(r["addressedAs"]) for r in answer}
    # GROUP_CONCAT's order is the engine's: test membership.
    assert "key agenda item" in how["migration-and-development"].split("; ")
    assert "subject" in how["international-migration"].split("; ")
    assert how["trafficking-in-persons"] == "subject of a recommendation it adopted"
    assert how["refugees"] == "subject of a finding it noted"
    assert len(how) == 24


def _recommendations(answer: list[dict]) -> None:
    appc = [r for r in answer if value(r["activityLabel"]).startswith("Fifth Asian")]
    assert [value(r["position"]) for r in appc] == ["1", "2", "3", "4"]
    assert value(appc[0]["recommendationLabel"]) == (
        "Strengthen regional cooperation to manage all types of migration"
    )
    reports = {value(r["report"]): value(r["availableFrom"]) for r in answer if r["report"]}
    assert reports == {
        f"{ID}document/egm-2001-report-and-recommendations": None,
        f"{ID}document/egm-2003-recommendations": (
            "http://www.unescap.org/esid/psis/population/programme/meetings"
        ),
    }


def _where_in_the_source(answer: list[dict]) -> None:
    found = {(value(r["paragraphNumber"]), value(r["property"]), value(r["value"])) for r in answer}
    assert ("5", "https://schema.org/startDate", "2003") in found
    ekg = "https://w3id.org/escap-kg/ontology#"
    assert ("5", f"{ekg}followUpOf", f"{ID}activity/fifth-appc") in found
    assert {number for number, _, _ in found} == {"1", "5"}


CHECKS: dict[str, Callable[[list[dict]], None]] = {
    "activities-in-time-order": _activities_in_time_order,
    "roles-in-activities": _roles_in_activities,
    "themes-of-fifth-appc": _themes_of_fifth_appc,
    "recommendations": _recommendations,
    "where-in-the-source": _where_in_the_source,
}


def test_each_worked_example_has_a_checked_answer() -> None:
    assert set(EXAMPLES) == set(CHECKS), (
        "every <!-- example: name --> block needs an expected answer in CHECKS, and back"
    )


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_worked_example_gives_the_expected_answer(served: KnowledgeGraph, name: str) -> None:
    kg = served
    if name not in EXAMPLES:
        pytest.fail(f"README.md has no <!-- example: {name} --> block")
    CHECKS[name](rows(kg, EXAMPLES[name]))


def slugs(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of a page."""
    seen: Counter[str] = Counter()
    anchors = set()
    for line in without_code(page.read_text(encoding="utf-8")).split("\n"):
        if m := HEADING.match(line):
            slug = re.sub(r"[^\w\- ]", "", m["text"].replace("`", "").lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return anchors


def without_code(text: str) -> str:
    """The text with fenced blocks blanked out (lines kept) and inline code removed."""
    out, fence = [], None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m and m["lang"] is not None:
            fence = f"{m['indent']}```"
            out.append("")
        elif fence is not None:
            if line.rstrip() == fence:
                fence = None
            out.append("")
        else:
            out.append(INLINE_CODE.sub("", line))
    return "\n".join(out)


def links(page: Path) -> list[tuple[int, str]]:
    text = without_code(page.read_text(encoding="utf-8"))
    return [
        (number, m["target"])
        for number, line in enumerate(text.split("\n"), start=1)
        for m in LINK.finditer(line)
    ]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_points_to_a_file_that_exists(page: Path) -> None:
    problems = []
    checked = 0
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        where = f"{page.relative_to(ROOT)}:{number}: ({target})"
        if target.startswith("/"):
            problems.append(f"{where} is absolute; link relative to the page")
            continue
        resolved = (page.parent / path).resolve() if path else page
        checked += 1
        if not resolved.exists():
            problems.append(f"{where} points to {resolved.relative_to(ROOT)}, which does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in slugs(resolved):
            problems.append(f"{where}: {resolved.name} has no heading with the anchor #{anchor}")
    assert not problems, "\n".join(problems)
    assert checked, f"{page.name} links to no other file of the project"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for _, t in links(ROOT / "README.md")}
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


def module_names() -> list[str]:
    package = ROOT / "src" / "escap_kg"
    return [p.name for p in sorted(package.glob("*.py"))] + [
        f"pages/{p.name}" for p in sorted((package / "pages").glob("*.py"))
    ]


def test_the_architecture_page_names_every_module() -> None:
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([\w/]+\.py)` \|", page, flags=re.MULTILINE))
    modules = module_names()
    assert len(modules) > 30
    missing = [m for m in modules if m not in table]
    assert not missing, f"docs/architecture.md: add a row to the module table for {missing}"
    gone = sorted(table - set(modules))
    assert not gone, (
        f"docs/architecture.md: the module table names modules that do not exist: {gone}"
    )
