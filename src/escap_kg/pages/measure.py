"""How wide a text is drawn, from the advance widths of a font, and wrapping text onto lines.

There is no browser on the server, so the pictures measure their labels with the advance widths
of DejaVu Sans (regular and bold, U+0020-U+017F and common punctuation), the font the stylesheet's
sans-serif stack falls back to on Linux and one of the widest sans-serif fonts: at the same size
Arial, Helvetica, Segoe UI, Roboto and San Francisco all draw narrower, so a label measured here
fits in any of them. Kerning only narrows text, and :data:`MARGIN` covers rounding and hinting.
Characters outside the table count as one em, wider than any Latin letter.
"""

from __future__ import annotations

#: Font units per em of the widths below.
UNITS = 2048
#: Measured widths are widened by this factor, for hinting and fonts slightly wider than ours.
MARGIN = 1.04
_FIRST = 0x20

# fmt: off
_REGULAR = (
    651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690, 1303,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716, 1087, 2048,
    1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 604, 604, 1343, 1141, 1767, 1532, 1612, 1235,
    1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403, 799, 690, 799, 1716, 1024, 1024,
    1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186, 569, 1995, 1298, 1253, 1300,
    1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075, 1303, 690, 1303, 1716, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 651, 821,
    1303, 1303, 1303, 1303, 690, 1024, 1024, 2048, 965, 1253, 1716, 739, 2048, 1024, 1024, 1716,
    821, 821, 1024, 1303, 1303, 651, 1024, 821, 965, 1253, 1985, 1985, 1985, 1087, 1401, 1401,
    1401, 1401, 1401, 1401, 1995, 1430, 1294, 1294, 1294, 1294, 604, 604, 604, 604, 1587, 1532,
    1612, 1612, 1612, 1612, 1612, 1716, 1612, 1499, 1499, 1499, 1499, 1251, 1239, 1290, 1255, 1255,
    1255, 1255, 1255, 1255, 2011, 1126, 1260, 1260, 1260, 1260, 569, 569, 569, 569, 1253, 1298,
    1253, 1253, 1253, 1253, 1253, 1716, 1253, 1298, 1298, 1298, 1298, 1212, 1300, 1212, 1401, 1255,
    1401, 1255, 1401, 1255, 1430, 1126, 1430, 1126, 1430, 1126, 1430, 1126, 1577, 1300, 1587, 1300,
    1294, 1260, 1294, 1260, 1294, 1260, 1294, 1260, 1294, 1260, 1587, 1300, 1587, 1300, 1587, 1300,
    1587, 1300, 1540, 1298, 1876, 1423, 604, 569, 604, 569, 604, 569, 604, 569, 604, 569, 1208,
    1138, 604, 569, 1343, 1186, 1186, 1141, 569, 1141, 569, 1141, 768, 1141, 700, 1151, 582, 1532,
    1298, 1532, 1298, 1532, 1298, 1666, 1532, 1298, 1612, 1253, 1612, 1253, 1612, 1253, 2191, 2095,
    1423, 842, 1423, 842, 1423, 842, 1300, 1067, 1300, 1067, 1300, 1067, 1300, 1067, 1251, 803,
    1251, 803, 1251, 803, 1499, 1298, 1499, 1298, 1499, 1298, 1499, 1298, 1499, 1298, 1499, 1298,
    2025, 1675, 1251, 1212, 1251, 1403, 1075, 1403, 1075, 1403, 1075, 721,
)
_REGULAR_EXTRA = {
    "\u00b6": 1303,
    "\u2013": 1024,
    "\u2014": 2048,
    "\u2018": 651,
    "\u2019": 651,
    "\u201c": 1061,
    "\u201d": 1061,
    "\u2022": 1208,
    "\u2026": 2048,
    "\u2192": 1716,
    "\u2190": 1716,
    "\u2282": 1716,
    "\u00b7": 651,
    "\u2212": 1716,
    "\u2009": 409,
    "\u00a0": 651,
}
_BOLD = (
    713, 934, 1067, 1716, 1425, 2052, 1786, 627, 936, 936, 1071, 1716, 778, 850, 778, 748, 1425,
    1425, 1425, 1425, 1425, 1425, 1425, 1425, 1425, 1425, 819, 819, 1716, 1716, 1716, 1188, 2048,
    1585, 1561, 1503, 1700, 1399, 1399, 1681, 1714, 762, 762, 1587, 1305, 2038, 1714, 1741, 1501,
    1741, 1577, 1475, 1397, 1663, 1585, 2259, 1579, 1483, 1485, 936, 748, 936, 1716, 1024, 1024,
    1382, 1466, 1214, 1466, 1389, 891, 1466, 1458, 702, 702, 1362, 702, 2134, 1458, 1407, 1466,
    1466, 1010, 1219, 979, 1458, 1335, 1892, 1321, 1335, 1192, 1458, 748, 1458, 1716, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 713,
    934, 1425, 1425, 1303, 1425, 748, 1024, 1024, 2048, 1155, 1323, 1716, 850, 2048, 1024, 1024,
    1716, 897, 897, 1024, 1507, 1303, 778, 1024, 897, 1155, 1323, 2120, 2120, 2120, 1188, 1585,
    1585, 1585, 1585, 1585, 1585, 2222, 1503, 1399, 1399, 1399, 1399, 762, 762, 762, 762, 1716,
    1714, 1741, 1741, 1741, 1741, 1741, 1716, 1741, 1663, 1663, 1663, 1663, 1483, 1511, 1473, 1382,
    1382, 1382, 1382, 1382, 1382, 2146, 1214, 1389, 1389, 1389, 1389, 702, 702, 702, 702, 1407,
    1458, 1407, 1407, 1407, 1407, 1407, 1716, 1407, 1458, 1458, 1458, 1458, 1335, 1466, 1335, 1585,
    1382, 1585, 1382, 1585, 1382, 1503, 1214, 1503, 1214, 1503, 1214, 1503, 1214, 1700, 1466, 1716,
    1466, 1399, 1389, 1399, 1389, 1399, 1389, 1399, 1389, 1399, 1389, 1681, 1466, 1681, 1466, 1681,
    1466, 1681, 1466, 1714, 1458, 1994, 1618, 762, 702, 762, 702, 762, 702, 762, 702, 762, 702,
    1524, 1404, 762, 702, 1587, 1362, 1362, 1305, 702, 1305, 702, 1305, 982, 1305, 1140, 1315, 760,
    1714, 1458, 1714, 1458, 1714, 1458, 2013, 1714, 1458, 1741, 1407, 1741, 1407, 1741, 1407, 2390,
    2241, 1577, 1010, 1577, 1010, 1577, 1010, 1475, 1219, 1475, 1219, 1475, 1219, 1475, 1219, 1397,
    979, 1397, 979, 1397, 979, 1663, 1458, 1663, 1458, 1663, 1458, 1663, 1458, 1663, 1458, 1663,
    1458, 2259, 1892, 1483, 1335, 1483, 1485, 1192, 1485, 1192, 1485, 1192, 891,
)
_BOLD_EXTRA = {
    "\u00b6": 1303,
    "\u2013": 1024,
    "\u2014": 2048,
    "\u2018": 778,
    "\u2019": 778,
    "\u201c": 1346,
    "\u201d": 1346,
    "\u2022": 1309,
    "\u2026": 2048,
    "\u2192": 1716,
    "\u2190": 1716,
    "\u2282": 1716,
    "\u00b7": 778,
    "\u2212": 1716,
    "\u2009": 409,
    "\u00a0": 713,
}

# fmt: on


def _advance(char: str, bold: bool) -> int:
    code = ord(char)
    table, extra = (_BOLD, _BOLD_EXTRA) if bold else (_REGULAR, _REGULAR_EXTRA)
    if _FIRST <= code < _FIRST + len(table) and table[code - _FIRST]:
        return table[code - _FIRST]
    return extra.get(char, UNITS)


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width in pixels of ``text`` set in ``size``-pixel type (bold when ``bold``)."""
    return sum(_advance(c, bold) for c in text) * size / UNITS * MARGIN


def _split_word(word: str, width: float, size: float, bold: bool) -> list[str]:
    """A word too long for a line, cut into pieces that each fit."""
    pieces: list[str] = []
    piece = ""
    for char in word:
        if piece and text_width(piece + char, size, bold) > width:
            pieces.append(piece)
            piece = ""
        piece += char
    return [*pieces, piece] if piece else pieces


def wrap(text: str, width: float, size: float, bold: bool = False) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels; a word longer than a
    line is cut. Nothing is left out: the lines hold every word of the text."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size, bold) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        if text_width(word, size, bold) <= width:
            line = word
        else:
            *full, line = _split_word(word, width, size, bold)
            lines.extend(full)
    if line:
        lines.append(line)
    return lines or [""]


def widest(lines: list[str], size: float, bold: bool = False) -> float:
    """The width of the widest of ``lines``."""
    return max((text_width(line, size, bold) for line in lines), default=0.0)


__all__ = ["MARGIN", "UNITS", "text_width", "widest", "wrap"]
