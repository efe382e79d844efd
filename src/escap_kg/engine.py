"""The query engine: Oxigraph in worker processes, off the event loop, with limits that kill.

The public face of three modules: :mod:`escap_kg.jobs` (what is asked and answered, shared with
the remote engine), :mod:`escap_kg.worker` (the zygote and the workers, in their own processes)
and :mod:`escap_kg.pool` (the pool, in the server).
"""

from __future__ import annotations

from escap_kg.jobs import Answer, DumpJob, EngineError, ExportJob, QueryJob, UpdateJob
from escap_kg.pool import QueryEngine, available_memory_kib, default_query_memory
from escap_kg.worker import StoreSource

__all__ = [
    "Answer",
    "DumpJob",
    "EngineError",
    "ExportJob",
    "QueryEngine",
    "QueryJob",
    "StoreSource",
    "UpdateJob",
    "available_memory_kib",
    "default_query_memory",
]
