"""Where the ontology, data and queries live, in a checkout or inside an installed wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

RESOURCE_DIRS = ("ontology", "data", "queries")


def resource_root() -> Path:
    """Return the folder that holds ontology/, data/ and queries/.

    A wheel carries them under ``escap_kg/_resources``; a checkout (or an editable install) has
    them at the top of the repository.
    """
    packaged = Path(str(resources.files("escap_kg"))) / "_resources"
    if (packaged / "ontology").is_dir():
        return packaged
    return Path(__file__).resolve().parents[2]


def ontology_dir() -> Path:
    """The folder of the TBox: ontology, themes, code lists and shapes."""
    return resource_root() / "ontology"


def data_dir() -> Path:
    """The folder of the ABox data files."""
    return resource_root() / "data"


def queries_dir() -> Path:
    """The folder of the query catalogue."""
    return resource_root() / "queries"
