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
    # Server limits; see the README's "Limits" section.
    query_timeout: float = 30.0
    max_result_bytes: int = 100 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024
    update_token: str | None = field(default=None, repr=False)
    #: Seconds a client may go without reading a streamed answer before it is dropped.
    send_timeout: float = 20.0
    #: Bytes of memory one query may take in its worker (0: a quarter of the machine's memory).
    max_query_memory: int = 0
    workers: int | None = None
    #: Workers in all, counting those added while long queries hold workers (workers + 4).
    max_workers: int | None = None
    database: Path | None = None
    #: SPARQL endpoints a query may call with SERVICE; none by default, so no outbound request.
    service_allowlist: tuple[str, ...] = ()
    #: Seconds to send a whole request head, and at most between two parts of a request body.
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    #: Connections served at once; one more is answered 503.
    max_connections: int = 1000
    #: Bytes of answers kept for repeated queries (0: no result cache).
    cache_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.query_timeout <= 0 or self.max_result_bytes <= 0 or self.max_body_bytes <= 0:
            raise ValueError("the query timeout and the size limits must be positive")
        if self.send_timeout <= 0:
            raise ValueError("the send timeout must be positive")
        if self.max_query_memory < 0:
            raise ValueError("the memory limit per query must be positive (or 0 for the default)")
        for endpoint in self.service_allowlist:
            if not endpoint.startswith(("http://", "https://")) or any(
                c in endpoint for c in " <>"
            ):
                raise ValueError(f"allowed SERVICE endpoint {endpoint!r} is not an http(s) IRI")
        if self.header_timeout <= 0 or self.body_timeout <= 0 or self.max_connections < 1:
            raise ValueError("the read timeouts and the number of connections must be positive")
        if self.cache_bytes < 0:
            raise ValueError("the result cache size must be 0 (off) or a number of bytes")
        if self.workers is not None and self.workers < 1:
            raise ValueError("the number of workers must be at least 1")
        if self.max_workers is not None and self.max_workers < (self.workers or 1):
            raise ValueError(
                f"the maximum number of workers ({self.max_workers}) must be at least the "
                f"number of workers ({self.workers or 1})"
            )
        if self.update_token is not None and len(self.update_token) < 16:
            raise ValueError("the update token must be at least 16 characters long")
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
        if value := os.environ.get("ESCAP_KG_UPDATE_TOKEN"):
            env["update_token"] = value
        if value := os.environ.get("ESCAP_KG_SERVICE_ALLOWLIST"):
            env["service_allowlist"] = tuple(v.strip() for v in value.split(",") if v.strip())
        for name, kind in (
            ("query_timeout", float),
            ("max_result_bytes", int),
            ("max_body_bytes", int),
            ("send_timeout", float),
            ("max_query_memory", int),
            ("workers", int),
            ("max_workers", int),
            ("header_timeout", float),
            ("body_timeout", float),
            ("max_connections", int),
            ("cache_bytes", int),
        ):
            if value := os.environ.get(f"ESCAP_KG_{name.upper()}"):
                try:
                    env[name] = kind(value)
                except ValueError:
                    raise ValueError(f"ESCAP_KG_{name.upper()}={value!r} is not a number") from None
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
