"""Run-time settings, read from arguments and ``ESCAP_KG_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from escap_kg import paths

DEFAULT_BASE_IRI = "https://w3id.org/escap-kg/"


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured; build with :meth:`from_env`."""

    base_iri: str = DEFAULT_BASE_IRI
    ontology_dir: Path = field(default_factory=paths.ontology_dir)
    data_dir: Path = field(default_factory=paths.data_dir)
    queries_dir: Path = field(default_factory=paths.queries_dir)
    extra_files: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.base_iri.startswith(("http://", "https://")) or not self.base_iri.endswith("/"):
            raise ValueError(
                f"base IRI {self.base_iri!r} must be an http(s) IRI ending in '/', "
                f"such as {DEFAULT_BASE_IRI!r}"
            )

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``ESCAP_KG_*`` variables (``BASE_IRI``, ``DATA_DIR``...) and overrides."""
        env: dict[str, object] = {}
        if value := os.environ.get("ESCAP_KG_BASE_IRI"):
            env["base_iri"] = value
        for name in ("ontology_dir", "data_dir", "queries_dir"):
            if value := os.environ.get(f"ESCAP_KG_{name.upper()}"):
                env[name] = Path(value)
        env.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **env)  # type: ignore[arg-type]

    @property
    def id_base(self) -> str:
        """Prefix of every resource IRI we mint: ``<base>id/``."""
        return f"{self.base_iri}id/"

    @property
    def graph_base(self) -> str:
        """Prefix of the named graphs, one per source file: ``<base>graph/``."""
        return f"{self.base_iri}graph/"
