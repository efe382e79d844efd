"""The worker pool: workers forked from a zygote, added while long jobs hold them, retired after;
long jobs demoted only while short ones compete with them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from escap_kg.engine import EngineError, QueryEngine, QueryJob, UpdateJob
from escap_kg.store import KnowledgeGraph
from tests.proc import stat_fields

SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
#: Runs for a few tenths of a second over the embedded graph: long, but well within the limit.
MEDIUM = "SELECT (COUNT(*) AS ?n) WHERE { SELECT * WHERE { ?a ?b ?c . ?d ?e ?f } LIMIT 1000000 }"
LIMIT = 3.0


def nice(pid: int) -> int:
    """The nice value of a process (field 19 of its stat line)."""
    return int(stat_fields(pid)[16])


def parent(pid: int) -> int:
    return int(stat_fields(pid)[1])


async def ask(engine: QueryEngine, query: str) -> bool:
    answer = await engine.query(QueryJob(query, "json"), LIMIT)
    return bool(json.loads(await answer.read())["boolean"])


async def until(condition: object, seconds: float = 5.0) -> None:
    """Wait for ``condition()`` to hold, checking every 10 ms."""
    for _ in range(int(seconds * 100)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not hold in time")


@pytest.fixture
def nquads(kg: KnowledgeGraph) -> bytes:
    return kg.nquads()


@contextlib.asynccontextmanager
async def running(nquads: bytes, workers: int, max_workers: int) -> AsyncIterator[QueryEngine]:
    engine = QueryEngine(nquads, workers=workers, max_workers=max_workers)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


def test_workers_are_forked_from_one_zygote(nquads: bytes) -> None:
    async def scenario() -> None:
        async with running(nquads, 2, 6) as engine:
            pids = engine.pids()
            assert len(pids) == 2
            assert len({parent(pid) for pid in pids}) == 1, "both are children of the zygote"
            assert await ask(engine, "ASK { ?s ?p ?o }")

    asyncio.run(scenario())


def test_a_long_query_gets_a_worker_added_so_short_ones_do_not_wait(nquads: bytes) -> None:
    """One worker, room for one more: while a runaway query holds the first, a second is forked
    ahead of need, and short queries are answered by it while the runaway still runs. Once the
    runaway is stopped the pool shrinks back to one worker."""

    async def scenario() -> None:
        async with running(nquads, 1, 2) as engine:
            (first,) = engine.pids()
            runaway = asyncio.ensure_future(engine.query(QueryJob(SLOW, "json"), LIMIT))
            await until(lambda: len(engine.pids()) == 2)
            for _ in range(5):
                assert await ask(engine, "ASK { ?s ?p ?o }")
            assert not runaway.done(), "the short queries did not wait for the runaway"
            second = next(pid for pid in engine.pids() if pid != first)
            assert nice(second) == 0
            with pytest.raises(EngineError, match="time limit"):
                await runaway
            await until(lambda: engine.pids() == [second])
            await until(lambda: not Path(f"/proc/{first}").exists())

    asyncio.run(scenario())


def test_a_long_query_alone_keeps_its_priority_and_its_worker(nquads: bytes) -> None:
    """Nothing competes with a long query on a quiet pool: its worker keeps its CPU priority,
    and once the query ends the worker goes back to the pool (its pages are warm) while the
    spare forked meanwhile, never used, is the one retired."""

    async def scenario() -> None:
        async with running(nquads, 1, 3) as engine:
            (first,) = engine.pids()
            for _ in range(2):
                medium = asyncio.ensure_future(engine.query(QueryJob(MEDIUM, "json"), LIMIT))
                await until(lambda: len(engine.pids()) == 2)
                assert nice(first) == 0
                answer = await medium
                assert json.loads(await answer.read())["results"]["bindings"][0]["n"]["value"]
                await until(lambda: engine.pids() == [first])
            assert nice(first) == 0
            assert engine.killed == 0

    asyncio.run(scenario())


def test_long_queries_are_demoted_while_short_ones_wait(nquads: bytes) -> None:
    """Two runaways on a pool of one worker and room for one more: the second waits for a
    worker, so the first drops to the lowest priority while a worker is forked for the second;
    a short query that then has to wait demotes the second too, and is answered once a runaway
    is stopped at the time limit."""

    async def scenario() -> None:
        async with running(nquads, 1, 2) as engine:
            (first,) = engine.pids()
            runaways = [
                asyncio.ensure_future(engine.query(QueryJob(SLOW, "json"), LIMIT)) for _ in range(2)
            ]
            await until(lambda: len(engine.pids()) == 2)
            await until(lambda: nice(first) == 19)
            (second,) = (pid for pid in engine.pids() if pid != first)
            await asyncio.sleep(0.3)
            assert nice(second) == 0, "no short query waits yet"
            short = asyncio.ensure_future(ask(engine, "ASK { ?s ?p ?o }"))
            await until(lambda: nice(second) == 19)
            assert await short
            for runaway in runaways:
                with pytest.raises(EngineError, match="time limit"):
                    await runaway
            await until(lambda: len(engine.pids()) == 1 and not {first, second} & {*engine.pids()})

    asyncio.run(scenario())


def test_a_fixed_pool_adds_no_worker(nquads: bytes) -> None:
    """With ``max_workers`` equal to ``workers`` a short query waits for the long one."""

    async def scenario() -> None:
        async with running(nquads, 1, 1) as engine:
            (first,) = engine.pids()
            runaway = asyncio.ensure_future(engine.query(QueryJob(SLOW, "json"), LIMIT))
            await asyncio.sleep(0.5)
            assert engine.pids() == [first]
            assert nice(first) == 0
            short = asyncio.ensure_future(ask(engine, "ASK { ?s ?p ?o }"))
            with pytest.raises(EngineError, match="time limit"):
                await runaway
            assert await short

    asyncio.run(scenario())


def test_the_pool_never_grows_past_max_workers(nquads: bytes) -> None:
    async def scenario() -> None:
        async with running(nquads, 1, 3) as engine:
            runaways = [
                asyncio.ensure_future(engine.query(QueryJob(SLOW, "json"), LIMIT)) for _ in range(5)
            ]
            await until(lambda: len(engine.pids()) == 3)
            await asyncio.sleep(0.5)
            assert len(engine.pids()) == 3
            results = await asyncio.gather(*runaways, return_exceptions=True)
            assert all(isinstance(r, EngineError) and r.status == 503 for r in results), results
            await until(lambda: len(engine.pids()) == 1)

    asyncio.run(scenario())


def test_workers_forked_after_an_update_hold_the_updated_graph(nquads: bytes) -> None:
    """The zygote applies each update too: a worker added later (here for a long query) sees it."""
    inserted = "ASK { <http://example.org/new> <http://example.org/p> 1 }"

    async def scenario() -> None:
        async with running(nquads, 1, 2) as engine:
            update = "INSERT DATA { <http://example.org/new> <http://example.org/p> 1 }"
            await engine.update(UpdateJob(update), LIMIT)
            (first,) = engine.pids()
            runaway = asyncio.ensure_future(engine.query(QueryJob(SLOW, "json"), LIMIT))
            await until(lambda: len(engine.pids()) == 2)
            assert await ask(engine, inserted), "answered by the worker forked after the update"
            assert not runaway.done()
            with pytest.raises(EngineError):
                await runaway
            await until(lambda: first not in engine.pids())
            assert await ask(engine, inserted)

    asyncio.run(scenario())


def test_a_killed_zygote_is_started_again(nquads: bytes) -> None:
    """If the zygote dies, the next worker the pool needs comes from a new one."""
    import os
    import signal

    async def scenario() -> None:
        async with running(nquads, 1, 2) as engine:
            (first,) = engine.pids()
            os.kill(parent(first), signal.SIGKILL)
            runaway = asyncio.ensure_future(engine.query(QueryJob(SLOW, "json"), LIMIT))
            await until(lambda: len(engine.pids()) == 2, seconds=30)
            assert await ask(engine, "ASK { ?s ?p ?o }")
            with pytest.raises(EngineError):
                await runaway

    asyncio.run(scenario())


def test_no_worker_is_added_without_memory_to_spare(
    nquads: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An added worker may come to copy the whole graph: none is added while the system has
    less than twice the zygote's size available. Replacing a killed worker is not held back."""
    import escap_kg.pool

    async def scenario() -> None:
        async with running(nquads, 1, 3) as engine:
            (first,) = engine.pids()
            monkeypatch.setattr(escap_kg.pool, "available_memory_kib", lambda: 1024)
            runaway = asyncio.ensure_future(engine.query(QueryJob(SLOW, "json"), LIMIT))
            await asyncio.sleep(0.5)
            assert engine.pids() == [first]
            short = asyncio.ensure_future(ask(engine, "ASK { ?s ?p ?o }"))
            await until(lambda: nice(first) == 19)  # a short query waits: the runaway is demoted
            assert engine.pids() == [first]
            with pytest.raises(EngineError, match="time limit"):
                await runaway
            assert await short
            await until(lambda: len(engine.pids()) == 1 and first not in engine.pids())
            assert await ask(engine, "ASK { ?s ?p ?o }")

    asyncio.run(scenario())


def test_max_workers_alone_caps_the_pool(nquads: bytes) -> None:
    """Without ``workers`` the pool has one per core, but never more than ``max_workers``."""

    async def scenario() -> None:
        engine = QueryEngine(nquads, max_workers=1)
        await engine.start()
        try:
            assert (engine.size, engine.max_size) == (1, 1)
            assert len(engine.pids()) == 1
        finally:
            await engine.close()

    asyncio.run(scenario())
