"""How to cite the dataset: a plain-text reference and a BibTeX entry from the same facts."""

from __future__ import annotations

from dataclasses import dataclass

from escap_kg import __version__
from escap_kg.void import LICENSE, MAINTAINERS, TITLE

LICENSE_NAME = "CC BY 4.0"


@dataclass(frozen=True)
class Citation:
    """A reference to the dataset as served at ``url``, as text and as a BibTeX entry."""

    title: str
    authors: str
    version: str
    year: str
    license_name: str
    license_url: str
    url: str

    @property
    def text(self) -> str:
        """The reference in the author (year). Title (version) [Data set] form."""
        year = self.year or "n.d."
        return (
            f"{self.authors} ({year}). {self.title} (version {self.version}) [Data set]. "
            f"Licensed under {self.license_name}. {self.url}"
        )

    @property
    def bibtex(self) -> str:
        """A ``@misc{escap-kg, ...}`` entry; the braces around author and title keep their case."""
        fields = [
            ("author", f"{{{self.authors}}}"),
            ("title", f"{{{self.title}}}"),
            ("year", self.year),
            ("version", self.version),
            ("url", self.url),
            ("note", f"Data set, licensed under {self.license_name} ({self.license_url})"),
        ]
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
        return f"@misc{{escap-kg,\n{body}\n}}"


def cite(url: str, issued: str) -> Citation:
    """The citation of the dataset served at ``url``, issued on ``issued`` (an xsd:date, or "")."""
    # The URL comes from the request's Host header: braces or a backslash in it would unbalance
    # the BibTeX entry, so they are percent-encoded as in any URL.
    safe_url = url.replace("\\", "%5C").replace("{", "%7B").replace("}", "%7D")
    year = issued[:4] if issued[:4].isdigit() else ""
    return Citation(TITLE, MAINTAINERS, __version__, year, LICENSE_NAME, str(LICENSE), safe_url)
