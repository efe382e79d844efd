"""Every fact of the source is in the graph, stated in the named graph of its paragraph; every
fact from another public source in the graph of that source; nothing more than the sources say."""

from __future__ import annotations

import re
from pathlib import Path

import pyoxigraph as ox
import pytest

from escap_kg.store import KnowledgeGraph

PREFIXES = """
PREFIX dcterms: <http://purl.org/dc/terms/>
PREFIX ekg: <https://w3id.org/escap-kg/ontology#>
PREFIX org: <http://www.w3.org/ns/org#>
PREFIX prov: <http://www.w3.org/ns/prov#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX schema: <https://schema.org/>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
PREFIX wd: <http://www.wikidata.org/entity/>
PREFIX activity: <https://w3id.org/escap-kg/id/activity/>
PREFIX actor-group: <https://w3id.org/escap-kg/id/actor-group/>
PREFIX country: <https://w3id.org/escap-kg/id/country/>
PREFIX document: <https://w3id.org/escap-kg/id/document/>
PREFIX finding: <https://w3id.org/escap-kg/id/finding/>
PREFIX graph: <https://w3id.org/escap-kg/graph/>
PREFIX organization: <https://w3id.org/escap-kg/id/organization/>
PREFIX plan: <https://w3id.org/escap-kg/id/plan/>
PREFIX recommendation: <https://w3id.org/escap-kg/id/recommendation/>
PREFIX role: <https://w3id.org/escap-kg/id/role/>
PREFIX theme: <https://w3id.org/escap-kg/id/theme/>
PREFIX place: <https://w3id.org/escap-kg/id/place/>
PREFIX alignment: <https://w3id.org/escap-kg/id/alignment/>
PREFIX confidence: <https://w3id.org/escap-kg/id/confidence/>
PREFIX unbis: <http://metadata.un.org/thesaurus/>
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>
"""

EGM_2001 = "activity:egm-2001-migration-and-development"
APPC = "activity:fifth-appc"
SEMINAR = "activity:seminar-2002-gender-equality-trafficking"
EGM_2003 = "activity:egm-2003-international-migration-and-development"
PAGE = "<http://www.unescap.org/esid/psis/population/programme/meetings>"
PLAN = "plan:fifth-appc-plan-of-action"
SOURCE = "<https://w3id.org/escap-kg/id/source/escap-migration-activities>"

# (what the fact says, the paragraph that states it or the graph of the outside source or link
# dataset that does, the triple patterns)
FACTS: list[tuple[str, str, str]] = [
    (
        "ESCAP is an organization, of the United Nations by its name",
        "paragraph-1",
        "organization:escap a org:FormalOrganization, schema:Organization ; "
        "skos:altLabel 'ESCAP'@en . organization:united-nations a org:FormalOrganization .",
    ),
    (
        "ESCAP is also called UNESCAP",
        "paragraph-5",
        "organization:escap skos:altLabel 'UNESCAP'@en .",
    ),
    (
        "ESCAP undertook the Fifth APPC, as paragraph 2 says too",
        "paragraph-2",
        f"{APPC} prov:wasAssociatedWith organization:escap .",
    ),
    (
        "ESCAP undertook the seminar, as paragraph 4 says too",
        "paragraph-4",
        f"{SEMINAR} prov:wasAssociatedWith organization:escap .",
    ),
    (
        "ESCAP undertook the 2003 meeting, as paragraph 5 says too",
        "paragraph-5",
        f"{EGM_2003} prov:wasAssociatedWith organization:escap .",
    ),
    (
        "ESCAP undertook all four activities",
        "paragraph-1",
        f"{EGM_2001} prov:wasAssociatedWith organization:escap . "
        f"{APPC} prov:wasAssociatedWith organization:escap . "
        f"{SEMINAR} prov:wasAssociatedWith organization:escap . "
        f"{EGM_2003} prov:wasAssociatedWith organization:escap .",
    ),
    (
        "ESCAP's parent body is ECOSOC, part of the UN",
        "un-system-chart",
        "organization:escap org:subOrganizationOf organization:ecosoc . "
        "organization:ecosoc org:subOrganizationOf organization:united-nations .",
    ),
    ("ESCAP links to Wikidata", "wikidata", "organization:escap skos:exactMatch wd:Q1142901 ."),
    ("UNFPA links to Wikidata", "wikidata", "organization:unfpa skos:exactMatch wd:Q623036 ."),
    ("Sweden links to Wikidata", "wikidata", "country:sweden skos:exactMatch wd:Q34 ."),
    (
        "UN Women links to Wikidata",
        "wikidata",
        "organization:un-women skos:exactMatch wd:Q641576 .",
    ),
    (
        "UNIFEM, DAW, OSAGI and INSTRAW were merged into UN Women in 2010-2011",
        "wikipedia-un-women",
        "?change a org:ChangeEvent ; org:originalOrganization organization:unifem, "
        "organization:daw, organization:osagi, organization:instraw ; "
        "org:resultingOrganization organization:un-women ; dcterms:temporal ?period . "
        "?period dcat:startDate '2010-07-02'^^xsd:date ; dcat:endDate '2011-01'^^xsd:gYearMonth . "
        "organization:daw skos:altLabel 'DAW'@en . organization:osagi skos:altLabel 'OSAGI'@en . "
        "organization:instraw skos:altLabel 'INSTRAW'@en .",
    ),
    (
        "UNIFEM's full name",
        "wikipedia-unifem",
        "organization:unifem skos:altLabel 'United Nations Development Fund for Women'@en .",
    ),
    (
        "UNFPA's full name",
        "unfpa-press-release-2002-12-17",
        "organization:unfpa skos:altLabel 'United Nations Population Fund'@en .",
    ),
    (
        "the Fifth APPC was held in Bangkok",
        "un-press-release-sg-sm-8562",
        f"{APPC} schema:location place:bangkok . place:bangkok a schema:Place .",
    ),
    (
        "the seminar was held in Bangkok",
        "scandasia-seminar-opening-2002",
        f"{SEMINAR} schema:location place:bangkok .",
    ),
    (
        "another source: the Swedish foreign ministry and UNIFEM co-convened the seminar, "
        "with the support of ESCAP",
        "scandasia-seminar-opening-2002",
        f"{SEMINAR} prov:qualifiedAssociation ?a1, ?a2, ?a3 . "
        "?a1 prov:agent organization:ministry-for-foreign-affairs-of-sweden ; "
        "prov:hadRole role:co-convener . "
        "?a2 prov:agent organization:unifem ; prov:hadRole role:co-convener . "
        "?a3 prov:agent organization:escap ; prov:hadRole role:supporter .",
    ),
    (
        "Sweden is a country, a place; its government is the partner, an organization",
        "paragraph-4",
        "country:sweden a ekg:Country . organization:government-of-sweden a "
        "schema:GovernmentOrganization, org:FormalOrganization ; "
        "schema:areaServed country:sweden .",
    ),
    (
        "the 2001 EGM is an ad-hoc expert group meeting with its title",
        "paragraph-2",
        f"{EGM_2001} a ekg:ExpertGroupMeeting ; ekg:isAdHoc true ; schema:name "
        "'Migration and Development: Opportunities and Challenges for Poverty Reduction in the "
        "ESCAP Region'@en .",
    ),
    (
        "the 2001 EGM took place in 2001",
        "paragraph-2",
        f"{EGM_2001} schema:startDate '2001'^^xsd:gYear .",
    ),
    (
        "the 2001 EGM was organized by ESCAP",
        "paragraph-1",
        f"{EGM_2001} schema:organizer organization:escap .",
    ),
    (
        "the 2001 EGM was preparatory to the Fifth APPC",
        "paragraph-2",
        f"{EGM_2001} ekg:preparatoryTo {APPC} .",
    ),
    (
        "the 2001 EGM's report and recommendations were a background document at the Fifth APPC",
        "paragraph-2",
        f"?doc a ekg:MeetingReport ; prov:wasGeneratedBy {EGM_2001} ; "
        f"ekg:presentedAsBackgroundDocumentAt {APPC} .",
    ),
    (
        "the Fifth APPC is a conference with its name",
        "paragraph-2",
        f"{APPC} a ekg:Conference ; "
        "schema:name 'Fifth Asian and Pacific Population Conference'@en .",
    ),
    (
        "the Fifth APPC was held 11-17 December 2002",
        "paragraph-2",
        f"{APPC} schema:startDate '2002-12-11'^^xsd:date ; schema:endDate '2002-12-17'^^xsd:date .",
    ),
    (
        "the Fifth APPC was organized jointly by ESCAP and UNFPA",
        "paragraph-2",
        "organization:unfpa a schema:Organization . "
        f"{APPC} schema:organizer organization:escap, organization:unfpa ; "
        "prov:qualifiedAssociation ?a1, ?a2 . "
        "?a1 prov:agent organization:escap ; prov:hadRole role:joint-organiser . "
        "?a2 prov:agent organization:unfpa ; prov:hadRole role:joint-organiser .",
    ),
    (
        "international migration and development was a key agenda item of the Fifth APPC",
        "paragraph-2",
        f"{APPC} ekg:keyAgendaItem theme:migration-and-development .",
    ),
    (
        "the Fifth APPC noted the diversity of flows from globalization and labour disparities",
        "paragraph-2",
        f"{APPC} ekg:noted ?f . ?f dcterms:subject theme:globalization, theme:labour-migration .",
    ),
    (
        "the Fifth APPC noted authorized/unauthorized, temporary/long-term and seasonal flows of "
        "migration in general, not of labour migration only",
        "paragraph-2",
        f"{APPC} ekg:noted finding:fifth-appc-forms-of-migration-flows . "
        "finding:fifth-appc-forms-of-migration-flows dcterms:subject theme:authorized-migration, "
        "theme:unauthorized-migration, theme:temporary-migration, "
        "theme:long-term-migration, theme:seasonal-migration . "
        "FILTER NOT EXISTS { finding:fifth-appc-forms-of-migration-flows dcterms:subject ?t . "
        "?t skos:broader* theme:labour-migration }",
    ),
    (
        "the Fifth APPC noted varied impacts at origin and destination",
        "paragraph-2",
        f"{APPC} ekg:noted finding:fifth-appc-varied-development-impacts .",
    ),
    (
        "the Fifth APPC noted the rise of refugees, asylum seekers, trafficked women and children "
        "and unauthorized labour migrants",
        "paragraph-2",
        f"{APPC} ekg:noted ?f . ?f dcterms:subject theme:refugees, theme:asylum-seekers, "
        "theme:trafficking-in-women-and-children, theme:unauthorised-labour-migration .",
    ),
    (
        "the Fifth APPC noted a rising share of females among international migrants",
        "paragraph-2",
        f"{APPC} ekg:noted ?f . ?f dcterms:subject theme:feminization-of-migration .",
    ),
    (
        "the Fifth APPC noted a lack of adequate, reliable and timely data",
        "paragraph-2",
        f"{APPC} ekg:noted ?f . ?f dcterms:subject theme:data-collection-and-statistics .",
    ),
    (
        "the Plan of Action was adopted at the Fifth APPC",
        "paragraph-3",
        f"{PLAN} a ekg:PlanOfAction ; ekg:adoptedAt {APPC} .",
    ),
    (
        "the Plan of Action is addressed to governments, with civil society and the international "
        "community",
        "paragraph-3",
        f"{PLAN} ekg:addressedTo actor-group:governments ; ekg:inCooperationWith "
        "actor-group:civil-society-organizations, actor-group:international-community . "
        f"FILTER NOT EXISTS {{ {PLAN} ekg:addressedTo ?other "
        "FILTER(?other != actor-group:governments) }",
    ),
    (
        "the Plan recommends regional cooperation to manage all migration flows",
        "paragraph-3",
        f"?r dcterms:isPartOf {PLAN} ; schema:position 1 ; "
        "dcterms:subject theme:regional-cooperation .",
    ),
    (
        "the Plan recommends combating trafficking, with counselling and rehabilitation",
        "paragraph-3",
        f"?r dcterms:isPartOf {PLAN} ; schema:position 2 ; "
        "dcterms:subject theme:trafficking-in-persons .",
    ),
    (
        "the Plan recommends research on migration, population, development, poverty and internal "
        "migration",
        "paragraph-3",
        f"?r dcterms:isPartOf {PLAN} ; schema:position 3 ; dcterms:subject theme:research, "
        "theme:population-dynamics, theme:poverty-reduction, theme:internal-migration .",
    ),
    (
        "the Plan recommends training and workshops for national data capacity",
        "paragraph-3",
        f"?r dcterms:isPartOf {PLAN} ; schema:position 4 ; "
        "dcterms:subject theme:capacity-building, theme:data-collection-and-statistics .",
    ),
    (
        "the seminar is a seminar with its title, in October 2002",
        "paragraph-4",
        f"{SEMINAR} a ekg:Seminar ; schema:startDate '2002-10'^^xsd:gYearMonth ; schema:name "
        "'Promoting Gender Equality to Combat Trafficking in Women and Children'@en .",
    ),
    (
        "ESCAP organized the seminar in cooperation with UNIFEM and Sweden (its government)",
        "paragraph-4",
        f"{SEMINAR} schema:organizer organization:escap ; "
        "ekg:partner organization:unifem, organization:government-of-sweden ; "
        "prov:qualifiedAssociation ?a1, ?a2 . "
        "?a1 prov:agent organization:unifem ; prov:hadRole role:cooperation-partner . "
        "?a2 prov:agent organization:government-of-sweden ; "
        "prov:hadRole role:cooperation-partner .",
    ),
    (
        "the seminar's key issue: empowering mobile women and girls, safe migration, "
        "migration-trafficking links from development, gender and human-rights perspectives",
        "paragraph-4",
        f"{SEMINAR} ekg:keyIssue ?issue ; dcterms:subject theme:empowerment-of-women-and-girls, "
        "theme:safe-migration, theme:human-rights, theme:migration-and-development .",
    ),
    (
        "the seminar planned further work on feminization and female migrants' vulnerability",
        "paragraph-4",
        f"{SEMINAR} ekg:plannedWork ?w . ?w dcterms:subject theme:feminization-of-migration .",
    ),
    (
        "the 2003 EGM is an ad-hoc expert group meeting in 2003 organized by UNESCAP",
        "paragraph-5",
        f"{EGM_2003} a ekg:ExpertGroupMeeting ; ekg:isAdHoc true ; "
        "schema:startDate '2003'^^xsd:gYear ; schema:organizer organization:escap .",
    ),
    (
        "the 2003 EGM followed up the Fifth APPC",
        "paragraph-5",
        f"{EGM_2003} ekg:followUpOf {APPC} .",
    ),
    (
        "the 2003 EGM's objective: internal/international migration and development, focus on "
        "gender, poverty and health",
        "paragraph-5",
        f"{EGM_2003} ekg:objective ?o ; dcterms:subject theme:internal-migration, "
        "theme:international-migration ; ekg:focus theme:gender, theme:poverty, theme:health .",
    ),
    (
        "the 2003 EGM's web page, with its recommendations (not a report) and background papers",
        "paragraph-5",
        f"{EGM_2003} schema:subjectOf {PAGE} . {PAGE} schema:url {PAGE} . "
        f"?rec a ekg:MeetingRecommendations ; prov:wasGeneratedBy {EGM_2003} ; "
        f"ekg:availableFrom {PAGE} . FILTER NOT EXISTS {{ ?rec a ekg:MeetingReport }} "
        f"?papers a ekg:BackgroundPaper ; ekg:availableFrom {PAGE} .",
    ),
    (
        "the labour migration theme is related to, not close to, UNBIS MIGRANT WORKERS",
        "unbis",
        "theme:labour-migration skos:relatedMatch unbis:1004108 . "
        "alignment:theme-labour-migration-unbis-1004108 rdf:predicate skos:relatedMatch . "
        "FILTER NOT EXISTS { theme:labour-migration skos:closeMatch unbis:1004108 }",
    ),
    (
        "the link of gender equality to SDG Goal 5, built from the IRI pattern, is not high "
        "confidence",
        "sdg",
        "alignment:theme-gender-equality-sdg-5 ekg:confidence confidence:medium .",
    ),
    (
        "the source is a report in English by ESCAP, covering 2001 to 2003",
        "source-document",
        f"{SOURCE} a ekg:SourceDocument, schema:Report ; "
        "dcterms:title 'Activities in the area of international migration'@en ; "
        "dcterms:creator organization:escap ; "
        "dcterms:language <http://id.loc.gov/vocabulary/iso639-1/en> ; "
        "dcterms:temporal [ a dcterms:PeriodOfTime ; "
        "<http://www.w3.org/ns/dcat#startDate> '2001'^^xsd:gYear ; "
        "<http://www.w3.org/ns/dcat#endDate> '2003'^^xsd:gYear ] .",
    ),
]


@pytest.mark.parametrize(("fact", "graph", "pattern"), FACTS, ids=[f[0][:60] for f in FACTS])
def test_fact_is_stated_in_its_graph(
    kg: KnowledgeGraph, fact: str, graph: str, pattern: str
) -> None:
    query = f"{PREFIXES} ASK {{ GRAPH graph:{graph} {{ {pattern} }} }}"
    result = kg.store.query(query)
    assert isinstance(result, ox.QueryBoolean)
    assert bool(result), (
        f"the graph does not say that {fact}: add it to data/ "
        f"(named graph {graph}); pattern: {pattern}"
    )


@pytest.mark.parametrize("paragraph", [1, 2, 3, 4, 5])
def test_each_paragraph_graph_is_traced_to_its_paragraph(
    kg: KnowledgeGraph, paragraph: int
) -> None:
    query = f"""{PREFIXES}
    ASK {{
      graph:paragraph-{paragraph} prov:wasDerivedFrom ?p .
      ?p a ekg:SourceParagraph ; schema:position {paragraph} ; dcterms:isPartOf ?doc .
      ?doc a ekg:SourceDocument .
      GRAPH graph:paragraph-{paragraph} {{ ?s ?pred ?o }}
    }}"""
    assert bool(kg.query(query)), f"graph paragraph-{paragraph} is empty or not traced"


def test_source_lists_its_paragraphs_in_order_and_has_no_file_name(kg: KnowledgeGraph) -> None:
    """A reader cites the document and its numbered paragraphs, not a file of ours."""
    query = f"""{PREFIXES}
    SELECT ?position WHERE {{ {SOURCE} dcterms:hasPart ?p . ?p schema:position ?position }}
    ORDER BY ?position"""
    result = kg.query(query)
    assert isinstance(result, ox.QuerySolutions)
    assert [int(row["position"].value) for row in result] == [1, 2, 3, 4, 5]
    ask = f"{PREFIXES} ASK {{ {SOURCE} dcterms:identifier ?id }}"
    assert not bool(kg.query(ask)), "the source document is identified by a file name"


def test_no_day_is_invented(kg: KnowledgeGraph) -> None:
    """Only the Fifth APPC has day-precision dates in the source."""
    query = f"""{PREFIXES}
    SELECT ?a WHERE {{ ?a schema:startDate ?d FILTER(datatype(?d) = xsd:date) }}"""
    result = kg.query(query)
    assert isinstance(result, ox.QuerySolutions)
    assert [str(row["a"].value) for row in result] == [
        "https://w3id.org/escap-kg/id/activity/fifth-appc"
    ]


ROOT = Path(__file__).resolve().parents[1]
OUTSIDE_SOURCES = sorted(p.stem for p in (ROOT / "data" / "context").glob("*.ttl"))


def rows(kg: KnowledgeGraph, query: str) -> list[dict[str, str]]:
    result = kg.query(f"{PREFIXES} {query}")
    assert isinstance(result, ox.QuerySolutions)
    names = [v.value for v in result.variables]
    return [{n: "" if row[n] is None else str(row[n].value) for n in names} for row in result]


@pytest.mark.parametrize("graph", OUTSIDE_SOURCES)
def test_each_outside_source_has_its_own_dated_graph(kg: KnowledgeGraph, graph: str) -> None:
    """A page can name the one source of every statement from outside the source document."""
    found = rows(
        kg,
        f"""SELECT ?source ?consulted ?publisher WHERE {{
          graph:{graph} prov:wasDerivedFrom ?source ; dcterms:date ?consulted .
          OPTIONAL {{ ?source dcterms:publisher ?publisher }}
        }}""",
    )
    assert len(found) == 1, f"graph {graph} needs exactly one source and one date: {found}"
    assert found[0]["source"].startswith("https://"), found
    assert found[0]["publisher"], f"say who published {found[0]['source']} in data/provenance.ttl"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", found[0]["consulted"])


def test_no_statement_has_two_sources(kg: KnowledgeGraph) -> None:
    """A statement from an outside source is in that source's graph only, so it is badged with
    exactly one source; the old graph of mixed sources is gone."""
    shared = rows(
        kg,
        """SELECT ?g1 ?g2 ?s ?p ?o WHERE {
          GRAPH ?g1 { ?s ?p ?o } GRAPH ?g2 { ?s ?p ?o }
          FILTER(STR(?g1) < STR(?g2))
          ?g1 prov:wasDerivedFrom ?src1 . ?g2 prov:wasDerivedFrom ?src2 .
          FILTER(!STRSTARTS(STR(?src1), STR(paragraph:)) || !STRSTARTS(STR(?src2), STR(paragraph:)))
          FILTER(?g1 != graph:entailed && ?g2 != graph:entailed)
        }""".replace("paragraph:", "<https://w3id.org/escap-kg/id/paragraph/>"),
    )
    assert shared == [], f"statements stated in the graphs of two sources: {shared}"
    assert not bool(kg.query(f"{PREFIXES} ASK {{ GRAPH graph:context {{ ?s ?p ?o }} }}"))


def test_the_disagreement_on_the_seminar_is_kept_with_both_sources(kg: KnowledgeGraph) -> None:
    """Paragraph 4 says ESCAP organized the seminar with UNIFEM and Sweden as partners; a news
    report says the Swedish foreign ministry and UNIFEM convened it with ESCAP's support. Both
    claims are in the graph, each in the graph of its source, found by one query."""
    found = rows(
        kg,
        f"""SELECT ?source ?agent ?role WHERE {{
          GRAPH ?g {{ {SEMINAR} prov:qualifiedAssociation ?a }}
          ?a prov:agent ?agent ; prov:hadRole ?role .
          ?g prov:wasDerivedFrom ?source .
        }} ORDER BY ?source ?agent""",
    )
    by_source: dict[str, set[tuple[str, str]]] = {}
    for row in found:
        agent = row["agent"].rsplit("/", 1)[-1]
        by_source.setdefault(row["source"], set()).add((agent, row["role"].rsplit("/", 1)[-1]))
    paragraph = "https://w3id.org/escap-kg/id/paragraph/escap-migration-activities-4"
    report = "https://scandasia.com/1750-swedish-state-secretary-opens-conference-in-bangkok/"
    assert by_source == {
        paragraph: {
            ("escap", "organiser"),
            ("unifem", "cooperation-partner"),
            ("government-of-sweden", "cooperation-partner"),
        },
        report: {
            ("escap", "supporter"),
            ("unifem", "co-convener"),
            ("ministry-for-foreign-affairs-of-sweden", "co-convener"),
        },
    }


@pytest.mark.parametrize(
    ("term", "wrong_parent"),
    [
        ("ekg:inCooperationWith", "dcterms:audience"),
        ("ekg:confidence", "dcterms:type"),
        ("ekg:plannedWork", "prov:generated"),
        ("ekg:noted", "prov:generated"),
    ],
)
def test_own_terms_do_not_claim_more_than_they_mean(
    kg: KnowledgeGraph, term: str, wrong_parent: str
) -> None:
    """Those the Plan urges Governments to cooperate with are not its audience; a confidence is
    not a type; a finding noted or work still to be done is not generated by the activity."""
    query = f"{PREFIXES} ASK {{ {term} rdfs:subPropertyOf+ {wrong_parent} }}"
    assert not bool(kg.query(query)), f"{term} must not be a sub-property of {wrong_parent}"


def test_planned_work_has_no_agent_and_is_not_generated(kg: KnowledgeGraph) -> None:
    query = f"""{PREFIXES} ASK {{
      ?w a ekg:PlannedWork .
      {{ ?w prov:wasAttributedTo|prov:qualifiedAttribution|prov:wasGeneratedBy ?x }}
      UNION {{ ?activity prov:generated ?w }}
    }}"""
    assert not bool(kg.query(query))


def test_a_country_is_a_place_not_an_agent(kg: KnowledgeGraph) -> None:
    query = f"""{PREFIXES} ASK {{
      {{ ekg:Country rdfs:subClassOf+ prov:Agent }}
      UNION {{ ?a prov:wasAssociatedWith|ekg:partner|schema:organizer|prov:agent ?c .
               ?c a ekg:Country }}
    }}"""
    assert not bool(kg.query(query))


def test_transitive_sub_organization_is_never_stated(kg: KnowledgeGraph) -> None:
    """It is derived: ESCAP is part of the UN through ECOSOC, each step from its source."""
    assert not bool(kg.query(f"{PREFIXES} ASK {{ ?o org:transitiveSubOrganizationOf ?p }}"))
    assert bool(
        kg.query(
            f"{PREFIXES} ASK {{ organization:escap org:subOrganizationOf+ "
            "organization:united-nations }"
        )
    )


def test_findings_keep_the_hedging_of_the_source(kg: KnowledgeGraph) -> None:
    """A finding the source reports as widely perceived is not labelled as a plain fact."""
    found = rows(
        kg,
        """SELECT ?f ?label WHERE { ?f a ekg:Finding ; ekg:statement ?s ; rdfs:label ?label .
          FILTER(CONTAINS(LCASE(STR(?s)), "perceived")) }""",
    )
    assert found, "the finding on growing categories of migration must keep 'widely perceived'"
    for row in found:
        assert "perceived" in row["label"].lower(), f"{row['f']}: the label drops the hedging"


def test_every_alignment_and_web_page_reads_on_its_own(kg: KnowledgeGraph) -> None:
    unlabelled = rows(
        kg, "SELECT ?a WHERE { ?a a ekg:Alignment FILTER NOT EXISTS { ?a rdfs:label ?l } }"
    )
    assert unlabelled == []
    literal_urls = rows(kg, "SELECT ?p ?u WHERE { ?p schema:url ?u FILTER(isLiteral(?u)) }")
    assert literal_urls == []
    untyped = rows(
        kg,
        """SELECT ?o WHERE { ?a schema:organizer ?o
          FILTER NOT EXISTS { ?o a/rdfs:subClassOf* schema:Organization } }""",
    )
    assert untyped == []


# British -ise spellings; the source and our text write -ize (Oxford spelling, as the UN does).
BRITISH = re.compile(
    r"(?<![\w:/#-])(un)?(organis|recognis|authoris|maximis|minimis|globalis|prioritis|realis|"
    r"materialis|serialis|characteris|summaris|categoris|standardis|mobilis|utilis)",
    re.IGNORECASE,
)


def test_our_own_text_has_one_spelling(kg: KnowledgeGraph) -> None:
    """Labels, definitions, comments and statements, and the README, write -ize; IRIs such as
    id/role/organiser are published identifiers and stay as they are."""
    found = [
        (str(q.subject), q.object.value)
        for q in kg.store.quads_for_pattern(None, None, None)
        if isinstance(q.object, ox.Literal) and BRITISH.search(q.object.value)
    ]
    assert found == [], f"use the -ize spelling in: {found[:5]}"
    readme = [
        line
        for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        if BRITISH.search(line)
    ]
    assert readme == [], f"use the -ize spelling in README.md: {readme[:5]}"
