"""The rollups' trust verdict: kept in the store for every worker, recounted in the background, carried
by the imports that count their events, and never used where it could be wrong."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import rollups
from database import Store
from demo_data import generate
from ingest import insert_documents
from plan import Plan
from plan_runner import run_plan

END = datetime(2025, 3, 20, 16, 37, tzinfo=UTC)


@pytest.fixture
async def trail(scratch_audit, store) -> list[dict]:
    events = generate(n_events=400, days=5, seed=31, end=END)
    assert await insert_documents(store, [dict(e) for e in events], batch_size=150) == (len(events), 0)
    return events


async def _meta(store: Store) -> dict[str, Any]:
    doc = await store.meta.find_one({"_id": f"rollups:{store.audit_name}"})
    assert doc is not None
    return doc


def _no_count(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(store: Any) -> bool:
        raise AssertionError("the collection was counted on the request path")

    monkeypatch.setattr(rollups, "check_trust", refused)


async def test_readers_use_the_stored_verdict_and_imports_carry_it(trail, store, monkeypatch) -> None:
    """Once counted, questions read the verdict without counting, also after an import through ingest."""
    assert await rollups.check_trust(store)
    trust = (await _meta(store))["trust"]
    assert trust["ok"] and trust["version"] == await rollups._version(store)
    _no_count(monkeypatch)
    assert await rollups.usable(store)
    more = generate(n_events=120, days=1, seed=32, end=END + timedelta(hours=1))
    assert await insert_documents(store, [dict(e) for e in more], batch_size=50) == (len(more), 0)
    assert await rollups.usable(store)  # carried to the version the import bumped
    fast = await run_plan(store, Plan())
    assert fast.query["collection"] == rollups.rollups_name(store.audit_name)
    assert fast.rows == [[len(trail) + len(more)]] == (await run_plan(store, Plan(), use_rollups=False)).rows


async def test_a_write_that_bumps_the_version_is_noticed_at_once(trail, store) -> None:
    assert await rollups.check_trust(store)
    await store.audit.insert_one({**trail[0], "_id": "bumped-stray"})
    await store.bump_audit_version()  # the convention for any writer
    assert not await rollups.usable(store)  # counted again at the new version: one event too many
    assert (await run_plan(store, Plan())).rows == [[len(trail) + 1]]


async def test_a_silent_write_is_noticed_at_the_next_recount(trail, store) -> None:
    """The trade-off: a writer that neither counts nor bumps the version is seen by the watcher's
    recount, not by the next question."""
    assert await rollups.check_trust(store)
    await store.audit.insert_one({**trail[0], "_id": "silent-stray"})
    assert await rollups.usable(store)  # the rollups lag by one event until the recount
    assert not await rollups.check_trust(store)
    assert not await rollups.usable(store)
    assert (await run_plan(store, Plan())).rows == [[len(trail) + 1]]


async def test_an_old_verdict_is_counted_again_on_read(trail, store) -> None:
    assert await rollups.check_trust(store)
    await store.audit.insert_one({**trail[0], "_id": "old-stray"})
    old = datetime.now(UTC) - timedelta(seconds=2 * rollups.TRUST_REFRESH + 1)
    await store.meta.update_one({"_id": f"rollups:{store.audit_name}"}, {"$set": {"trust.at": old}})
    assert not await rollups.usable(store)


async def test_a_verdict_that_counted_on_a_lease_ends_with_it(trail, store) -> None:
    """A batch inserted under a lease: trusted while the lease runs; once it has expired (the import
    died), the verdict is not used, and the recount distrusts the rollups."""
    batch = generate(n_events=60, days=1, seed=33, end=END)
    await rollups.begin(store, len(batch))
    await store.audit.insert_many([dict(e) for e in batch])
    assert await rollups.check_trust(store)
    assert (await _meta(store))["trust"]["until"] is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    await store.meta.update_one({"_id": f"rollups:{store.audit_name}"}, {"$set": {"trust.until": past}})
    lease = next(iter((await _meta(store))["inflight"]))
    await store.meta.update_one(
        {"_id": f"rollups:{store.audit_name}"}, {"$set": {f"inflight.{lease}.until": past}}
    )
    assert not await rollups.usable(store)


async def test_a_verdict_dropped_during_a_count_is_not_stored_back(trail, store, monkeypatch) -> None:
    """`forget` (a failed import, a rebuild) while a recount runs: the recount's verdict is stale and
    is not stored; the next reader counts again."""
    real = type(store).audit

    class Counting:
        def __init__(self, collection: Any) -> None:
            self.collection = collection

        def __getattr__(self, name: str) -> Any:
            return getattr(self.collection, name)

        async def estimated_document_count(self) -> int:
            await rollups.forget(store)
            return await self.collection.estimated_document_count()

    monkeypatch.setattr(type(store), "audit", property(lambda s: Counting(real.fget(s))))
    assert await rollups.check_trust(store)  # this count agreed, but a forget happened meanwhile
    assert "trust" not in await _meta(store)


async def test_one_worker_recounts_at_a_time_and_the_watcher_keeps_it_fresh(trail, store) -> None:
    await rollups.forget(store)
    assert await rollups._claim(store)
    assert not await rollups._claim(store)  # another worker: the claim is held
    assert await rollups.check_trust(store)  # a reader's count leaves the claim to its holder
    assert "trust_claim" in await _meta(store)
    await store.meta.update_one({"_id": f"rollups:{store.audit_name}"}, {"$unset": {"trust_claim": ""}})
    assert not await rollups._claim(store)  # fresh: nothing to do
    old = datetime.now(UTC) - timedelta(seconds=rollups.TRUST_REFRESH + 1)
    await store.meta.update_one({"_id": f"rollups:{store.audit_name}"}, {"$set": {"trust.at": old}})
    watcher = asyncio.create_task(rollups.watch(store, every=0.05))
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            trust = (await _meta(store))["trust"]
            if trust["at"].replace(tzinfo=UTC) > old + timedelta(seconds=1):
                break
        assert trust["ok"] and "trust_claim" not in await _meta(store)
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def test_a_costly_count_is_repeated_less_often(trail, store, monkeypatch) -> None:
    """A count that held the store 10 s (a large trail) is repeated after 500 s, not every 30 s."""
    assert await rollups.check_trust(store)
    old = datetime.now(UTC) - timedelta(seconds=100)
    await store.meta.update_one(
        {"_id": f"rollups:{store.audit_name}"}, {"$set": {"trust.at": old, "trust.took": 10.0}}
    )
    assert not await rollups._claim(store)
    _no_count(monkeypatch)
    assert await rollups.usable(store)


async def test_a_batch_whose_insert_never_reported_drops_the_verdict(trail, store) -> None:
    """An insert that failed partway: its lease ends with the import, and the verdict with it."""
    assert await rollups.check_trust(store)
    counts = rollups.Accumulator(store)
    batch = generate(n_events=40, days=1, seed=34, end=END)
    await counts.begin(len(batch))
    await store.audit.insert_many([dict(e) for e in batch[:20]])  # then the connection broke
    await counts.close()
    assert "trust" not in await _meta(store)
    assert not await rollups.usable(store)  # counted again: 20 events the rollups will never hold


async def test_concurrent_readers_without_a_verdict_count_once(trail, store, monkeypatch) -> None:
    await rollups.forget(store)
    real, calls = rollups.check_trust, []

    async def counted(s: Any) -> bool:
        calls.append(1)
        await asyncio.sleep(0.05)
        return await real(s)

    monkeypatch.setattr(rollups, "check_trust", counted)
    assert all(await asyncio.gather(*(rollups.usable(store) for _ in range(6))))
    assert len(calls) == 1  # each count holds the whole store on SecantusDB


async def test_documents_set_aside_by_the_sweep_drop_the_verdict(trail, store) -> None:
    import audit_shape

    assert await rollups.check_trust(store)
    odd = {**trail[0], "_id": "odd-shape", "event_timestamp": "not a date"}
    await store.audit.insert_one(odd, bypass_document_validation=True)
    assert await audit_shape._set_aside(store, [odd]) == 1
    assert "trust" not in await _meta(store)
