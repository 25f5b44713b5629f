"""Many script calls in one pipeline (relay.store.calls.run)."""

from __future__ import annotations

from redis.asyncio import Redis

from relay.store.calls import Call, run, script

ECHO = "return {KEYS[1], ARGV[1]}"
COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


async def script_exists_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))


async def test_a_batch_answers_each_call_in_order_without_asking_which_scripts_exist(
    redis: Redis,
) -> None:
    echo, count = script(redis, ECHO), script(redis, COUNT)
    calls = [Call(echo, ["a"], ["1"]), Call(count, ["n"], [2]), Call(echo, ["b"], ["x"])]
    assert await run(redis, calls) == [["a", "1"], 2, ["b", "x"]]  # loads them
    await redis.config_resetstat()
    assert await run(redis, calls) == [["a", "1"], 4, ["b", "x"]]
    # redis-py's own script calls in a pipeline send SCRIPT EXISTS first, every batch.
    assert await script_exists_calls(redis) == 0


async def test_scripts_the_server_forgot_are_loaded_and_their_calls_run_once(
    redis: Redis,
) -> None:
    echo, count = script(redis, ECHO), script(redis, COUNT)
    calls = [Call(count, ["n"], [1]), Call(echo, ["a"], ["z"]), Call(count, ["n"], [10])]
    assert await run(redis, calls) == [1, ["a", "z"], 11]
    await redis.script_flush()  # as a restarted server or a promoted replica would
    assert await run(redis, calls) == [12, ["a", "z"], 22]
    assert await redis.get("n") == "22"
