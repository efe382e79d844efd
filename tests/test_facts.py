"""Every fact of the source is in the graph, stated in the named graph of its paragraph."""

from __future__ import annotations

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
"""

EGM_2001 = "activity:egm-2001-migration-and-development"
APPC = "activity:fifth-appc"
SEMINAR = "activity:seminar-2002-gender-equality-trafficking"
EGM_2003 = "activity:egm-2003-international-migration-and-development"
PAGE = "<http://www.unescap.org/esid/psis/population/programme/meetings>"
PLAN = "plan:fifth-appc-plan-of-action"
SOURCE = "<https://w3id.org/escap-kg/id/source/escap-migration-activities>"

# (what the fact says, the paragraph that states it or "context"/a link graph, the triple patterns)
FACTS: list[tuple[str, str, str]] = [
    (
        "ESCAP is a UN commission",
        "paragraph-1",
        "organization:escap a org:FormalOrganization ; "
        "org:transitiveSubOrganizationOf organization:united-nations ; skos:altLabel 'ESCAP'@en .",
    ),
    (
        "ESCAP is also called UNESCAP",
        "paragraph-5",
        "organization:escap skos:altLabel 'UNESCAP'@en .",
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
        "context",
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
        "UNIFEM was succeeded by UN Women",
        "context",
        "?change org:originalOrganization organization:unifem ; "
        "org:resultingOrganization organization:un-women .",
    ),
    ("Sweden is a country, not an organisation", "paragraph-4", "country:sweden a ekg:Country ."),
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
        "the 2001 EGM was organised by ESCAP",
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
        "the Fifth APPC was organised jointly by ESCAP and UNFPA",
        "paragraph-2",
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
        "the Fifth APPC noted the diversity of flows from globalisation and labour disparities",
        "paragraph-2",
        f"{APPC} ekg:noted ?f . ?f dcterms:subject theme:globalization, theme:labour-migration .",
    ),
    (
        "the Fifth APPC noted authorised/unauthorised, temporary, long-term and seasonal flows",
        "paragraph-2",
        f"{APPC} ekg:noted ?f . ?f dcterms:subject theme:authorised-labour-migration, "
        "theme:unauthorised-labour-migration, theme:temporary-labour-migration, "
        "theme:long-term-labour-migration, theme:seasonal-labour-migration .",
    ),
    (
        "the Fifth APPC noted varied impacts at origin and destination",
        "paragraph-2",
        f"{APPC} ekg:noted finding:fifth-appc-varied-development-impacts .",
    ),
    (
        "the Fifth APPC noted the rise of refugees, asylum seekers, trafficked women and children "
        "and unauthorised labour migrants",
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
        "actor-group:civil-society-organizations, actor-group:international-community .",
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
        "ESCAP organised the seminar in cooperation with UNIFEM and Sweden",
        "paragraph-4",
        f"{SEMINAR} schema:organizer organization:escap ; "
        "ekg:partner organization:unifem, country:sweden ; prov:qualifiedAssociation ?a1, ?a2 . "
        "?a1 prov:agent organization:unifem ; prov:hadRole role:cooperation-partner . "
        "?a2 prov:agent country:sweden ; prov:hadRole role:cooperation-partner .",
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
        "the 2003 EGM is an ad-hoc expert group meeting in 2003 organised by UNESCAP",
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
        "the 2003 EGM's web page, with its recommendations and background papers",
        "paragraph-5",
        f"{EGM_2003} schema:subjectOf {PAGE} . "
        f"?rec prov:wasGeneratedBy {EGM_2003} ; ekg:availableFrom {PAGE} . "
        f"?papers a ekg:BackgroundPaper ; ekg:availableFrom {PAGE} .",
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
