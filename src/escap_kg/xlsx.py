"""Spreadsheets: a SELECT answer (SPARQL JSON results) as an Excel workbook, with openpyxl.

IRIs are hyperlinks; ``xsd:date`` and ``xsd:dateTime`` are Excel dates; an ``xsd:gYear`` is a
whole number (the year) and an ``xsd:gYearMonth`` stays text such as ``2002-10``, since Excel
has no date without a day and we never invent one; numbers and booleans are numbers and
booleans; everything else is text, never a formula.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime
from typing import Any

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

XSD = "http://www.w3.org/2001/XMLSchema#"
INTEGERS = {
    f"{XSD}{name}"
    for name in (
        "integer",
        "int",
        "long",
        "short",
        "byte",
        "nonNegativeInteger",
        "positiveInteger",
        "negativeInteger",
        "nonPositiveInteger",
        "unsignedInt",
        "unsignedLong",
        "unsignedShort",
        "unsignedByte",
    )
}
DECIMALS = {f"{XSD}decimal", f"{XSD}double", f"{XSD}float"}
#: Excel stops following a hyperlink longer than this.
MAX_LINK = 2000
#: The widest column, in characters.
MAX_WIDTH = 60
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class SpreadsheetError(ValueError):
    """An answer that cannot be a spreadsheet (a graph, not a table)."""


def cell_value(term: dict[str, str]) -> tuple[Any, str, str]:
    """A term of SPARQL JSON results as a cell: its value, its number format, its link."""
    kind, text = term.get("type", ""), term.get("value", "")
    if kind == "uri":
        return text, "", text if len(text) <= MAX_LINK else ""
    if kind == "bnode":
        return f"_:{text}", "", ""
    datatype = term.get("datatype", "")
    try:
        if datatype == f"{XSD}date" and re.fullmatch(r"-?\d{4}-\d\d-\d\d", text):
            return date.fromisoformat(text), "yyyy-mm-dd", ""
        if datatype == f"{XSD}dateTime":
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is not None:  # Excel has no time zones: written in UTC
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return moment, "yyyy-mm-dd hh:mm:ss", ""
        if datatype == f"{XSD}gYear" and re.fullmatch(r"\d{4}", text):
            return int(text), "0", ""
        if datatype in INTEGERS:
            return int(text), "0", ""
        if datatype in DECIMALS:
            return float(text), "General", ""
        if datatype == f"{XSD}boolean" and text in ("true", "false", "1", "0"):
            return text in ("true", "1"), "", ""
    except ValueError:
        pass  # not a valid lexical form: kept as the text it is
    return _CONTROL.sub("", text), "", ""


def results_to_xlsx(results: bytes | dict[str, Any], sheet: str = "answer") -> bytes:
    """An Excel workbook of a SELECT (or ASK) answer in SPARQL JSON results: a header row of
    the variables, frozen, then one row per solution."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    data = json.loads(results) if isinstance(results, bytes) else results
    if not isinstance(data, dict) or "head" not in data:
        raise SpreadsheetError("a spreadsheet holds the answer of a SELECT or ASK query")
    workbook = Workbook()
    ws = workbook.active
    ws.title = re.sub(r"[\[\]:*?/\\]", "-", sheet)[:31] or "answer"
    if "boolean" in data:
        variables, rows = ["boolean"], [{"boolean": _boolean(data["boolean"])}]
    else:
        variables = list(data["head"].get("vars", []))
        rows = data["results"]["bindings"]
    ws.append(variables)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    widths = [len(v) for v in variables]
    for r, row in enumerate(rows, start=2):
        for c, variable in enumerate(variables, start=1):
            term = row.get(variable)
            if term is None:
                continue
            value, number_format, link = cell_value(term)
            cell = ws.cell(row=r, column=c)
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"  # text that starts with "=" stays text, not a formula
            if number_format:
                cell.number_format = number_format
            if link:
                cell.hyperlink = link
                cell.style = "Hyperlink"
            widths[c - 1] = max(widths[c - 1], len(str(value)))
    for c, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(c)].width = min(MAX_WIDTH, width + 2)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _boolean(value: object) -> dict[str, str]:
    return {"type": "literal", "value": str(bool(value)).lower(), "datatype": f"{XSD}boolean"}


__all__ = ["XLSX_MEDIA_TYPE", "SpreadsheetError", "cell_value", "results_to_xlsx"]
