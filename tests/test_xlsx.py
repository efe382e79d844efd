"""Answers as Excel workbooks: `query --format xlsx` and `?_format=xlsx`, read back with
openpyxl: the header, hyperlinks for IRIs, dates as dates, years as numbers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from escap_kg.cli import app
from escap_kg.server import create_app
from escap_kg.settings import Settings
from escap_kg.store import KnowledgeGraph
from escap_kg.xlsx import XLSX_MEDIA_TYPE, results_to_xlsx

ID = "https://w3id.org/escap-kg/id/"
XSD = "http://www.w3.org/2001/XMLSchema#"


@pytest.fixture(scope="module")
def client(kg: KnowledgeGraph) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(workers=1), kg)) as test_client:
        yield test_client


def rows_of(body: bytes) -> tuple[object, list[list[object]]]:
    sheet = load_workbook(io.BytesIO(body)).active
    return sheet, [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_catalogue_answer_as_a_workbook(client: TestClient) -> None:
    response = client.get("/api/queries/01-activities-in-time-order", params={"_format": "xlsx"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX_MEDIA_TYPE
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="01-activities-in-time-order.xlsx"'
    )
    sheet, rows = rows_of(response.content)
    assert sheet.freeze_panes == "A2"
    header = rows[0]
    assert header[:2] == ["activity", "activityLabel"]
    by_iri = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    appc_iri = ID + "activity/fifth-appc"
    appc = by_iri[appc_iri]
    appc_row = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == appc_iri)
    assert appc_row[0].hyperlink.target == appc_iri
    # A day is a date (read back as a datetime at midnight), with a date format.
    assert appc["startDate"] == datetime(2002, 12, 11)
    assert appc_row[header.index("startDate")].is_date
    # A year is a whole number, a month stays text: no day is invented.
    assert by_iri[ID + "activity/egm-2001-migration-and-development"]["startDate"] == 2001
    seminar = by_iri[ID + "activity/seminar-2002-gender-equality-trafficking"]
    assert seminar["startDate"] == "2002-10"


def test_a_graph_answer_is_refused(client: TestClient) -> None:
    response = client.get("/api/queries/16-fifth-appc-neighbourhood", params={"_format": "xlsx"})
    assert response.status_code == 406, response.text
    assert "gives a graph; a workbook holds tables" in response.text


def test_cli_writes_a_workbook() -> None:
    result = CliRunner().invoke(app, ["query", "03-partners-of-escap", "--format", "xlsx"])
    assert result.exit_code == 0, result.output
    _sheet, rows = rows_of(result.stdout_bytes)
    assert rows[0]
    assert len(rows) > 1


def test_cells_keep_their_types() -> None:
    results = {
        "head": {"vars": ["iri", "day", "year", "month", "n", "x", "flag", "text", "moment"]},
        "results": {
            "bindings": [
                {
                    "iri": {"type": "uri", "value": ID + "place/bangkok"},
                    "day": {"type": "literal", "value": "2002-12-11", "datatype": f"{XSD}date"},
                    "year": {"type": "literal", "value": "2001", "datatype": f"{XSD}gYear"},
                    "month": {
                        "type": "literal",
                        "value": "2002-10",
                        "datatype": f"{XSD}gYearMonth",
                    },
                    "n": {"type": "literal", "value": "7", "datatype": f"{XSD}integer"},
                    "x": {"type": "literal", "value": "2.5", "datatype": f"{XSD}decimal"},
                    "flag": {"type": "literal", "value": "true", "datatype": f"{XSD}boolean"},
                    "text": {"type": "literal", "value": '=HYPERLINK("x")\x01', "xml:lang": "en"},
                    "moment": {
                        "type": "literal",
                        "value": "2002-12-11T09:00:00+07:00",
                        "datatype": f"{XSD}dateTime",
                    },
                },
                {"iri": {"type": "bnode", "value": "b0"}},
            ]
        },
    }
    sheet, rows = rows_of(results_to_xlsx(results))
    values = dict(zip(rows[0], rows[1], strict=True))
    assert values["iri"] == ID + "place/bangkok"
    assert sheet["A2"].hyperlink.target == ID + "place/bangkok"
    assert values["day"] == datetime(2002, 12, 11)
    assert values["day"].date() == date(2002, 12, 11)
    assert values["year"] == 2001
    assert values["month"] == "2002-10"
    assert values["n"] == 7
    assert values["x"] == 2.5
    assert values["flag"] is True
    # Text that looks like a formula stays text, and control characters are dropped.
    assert values["text"] == '=HYPERLINK("x")'
    assert sheet["H2"].data_type == "s"
    assert values["moment"] == datetime(2002, 12, 11, 2, 0, 0)
    assert rows[2][0] == "_:b0"
    assert rows[2][1] is None


def test_ask_answer_is_one_cell() -> None:
    _sheet, rows = rows_of(results_to_xlsx({"head": {}, "boolean": True}))
    assert rows == [["boolean"], [True]]
