"""The shared rate limiter: of many simultaneous hits exactly the limit pass, whatever order they reach
the store in, and refused or forgotten hits give their place back."""

import asyncio

import pytest

from rate_limit import RateLimiter, TooManyAttempts


@pytest.mark.parametrize("limit", [1, 3, 7])
async def test_exactly_the_limit_pass_among_simultaneous_hits(store, limit: int) -> None:
    limiters = [RateLimiter(store, limit=limit, window_seconds=600) for _ in range(4)]  # several workers
    await limiters[0].ensure_indexes()
    for round_ in range(5):
        key = f"test-concurrent-{limit}-{round_}"
        outcomes = await asyncio.gather(
            *(limiters[i % 4].hit(key, "test", now=1_000.0) for i in range(6 * limit)), return_exceptions=True
        )
        refused = [o for o in outcomes if isinstance(o, TooManyAttempts)]

        assert len(refused) == 5 * limit and all(
            o is None or isinstance(o, TooManyAttempts) for o in outcomes
        )
        doc = await store["rate_hits"].find_one({"_id": key})
        assert len(doc["hits"]) == limit  # the refused hits are not kept


async def test_forgotten_hits_and_the_window_give_places_back(store) -> None:
    limiter = RateLimiter(store, limit=2, window_seconds=60)
    taken = [await limiter.add("test-forget", 100.0), await limiter.add("test-forget", 101.0)]
    assert [await limiter.over(h) for h in taken] == [False, False]
    third = await limiter.add("test-forget", 102.0)
    assert await limiter.over(third)
    await limiter.forget([taken[0].id])  # cancelled: its place is free again for the hit after it
    assert not await limiter.over(third)
    assert await limiter.retry_after("test-forget", 102.0) == 59  # the oldest kept (101) leaves at 161
    with pytest.raises(TooManyAttempts):
        await limiter.hit("test-forget", "test", now=150.0)
    await limiter.hit("test-forget", "test", now=162.0)  # both older hits have left the window
