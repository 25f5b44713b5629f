"""The poll schedule: due tasks claimed in batches under a lease, outcomes written back."""

from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from collections import defaultdict

import msgspec

from relay.core.lifecycle import Step
from relay.core.model import Event, TaskState
from relay.store import keys, scripts
from relay.store.calls import Call, run, script
from relay.store.codec import dump_event, dump_state
from relay.store.quota import Quota
from relay.store.record import TaskRecord, mget_by_shard
from relay.store.redis import Client, to_ms
from relay.store.shards import (
    claim_over_shards,
    claimed_ids,
    due_shards,
    grouped,
    round_robin,
)


# Structs, not dataclasses: one of each is built per poll (a frozen dataclass's
# __init__ costs ten times as much).
class ClaimedPoll(msgspec.Struct, frozen=True):
    task_id: str
    place: keys.Place  # where its keys are: its write-back needs them again
    raw_state: str  # as stored: the write-back is refused if it changed meanwhile
    state: TaskState
    polls: int
    lease: int
    calls_back: bool = False  # every registration says the upstream calls back
    signals: int = 0  # quick re-fetches the latest upstream callback still allows


class Outcome(msgspec.Struct, frozen=True):
    """One step to write: from a poll, with its claim (or, in benchmarks, without one)."""

    task_id: str
    raw_state: str
    step: Step
    polls_after: int
    lease: int | None = None  # None: not from a claim
    count_poll: bool = True
    signals_after: int | None = None  # None: the stored count stays as it is
    place: keys.Place | None = None  # None: worked out from task_id
    # The state the step was computed from, as parsed from raw_state: when the step
    # leaves it as it was (most polls), raw_state is written back as it is.
    before: TaskState | None = None


@dataclasses.dataclass(frozen=True)
class Applied:
    replies: list[str]  # one per outcome, in order
    skipped: list[tuple[str, str]]  # (task id, tenant) of registrations that could not be read


# Below this many tokens per shard, a claim asks every shard first (see _claim_scarce).
SCARCE = 4
# Above it, a claim takes at least this many of each shard it calls (see _claim_plenty):
# each call names all of a shard's schedule, whatever it takes.
PLENTY = 32


class PollQueue:
    """The poll schedule, small sorted sets per shard (see `relay.store.keys`).

    A claim reads which shards have a task due, takes tokens from the rate every
    worker shares, spends them on those shards' due tasks (a large claim: at
    least PLENTY of each shard it calls, in turn; a small one: every shard's
    fair pick first, shared among all tenants), and gives back what it did not
    spend.
    """

    def __init__(self, redis: Client, *, rate: float, retention: float) -> None:
        self.redis = redis
        self.rate = rate
        # A fifth of a second of calls at most at once, so polls are spread, not bursty.
        self.burst = max(1.0, rate / 5)
        self.retention = max(1, to_ms(retention))  # ms: settings accept fractions
        self._take = script(redis, scripts.TAKE_TOKENS)
        self._refund = script(redis, scripts.REFUND_TOKENS)
        self._claim = script(redis, scripts.CLAIM_POLLS)
        self._quota = Quota(redis)
        self._apply = script(redis, scripts.APPLY)
        self._signal = script(redis, scripts.SIGNAL)
        self._drop = script(redis, scripts.DROP_DUE)
        self._turn = itertools.count()
        # Claims of this many or more cost one call per shard; smaller ones two (a peek
        # of every shard first, to share them fairly): a loop claiming ahead waits for this.
        self.full_claim = SCARCE * keys.SHARDS
        self._still_due: list[int] | None = None  # see claim

    async def claim(self, limit: int, lease: float, now: float) -> tuple[list[ClaimedPoll], bool]:
        """Due tasks, and whether the shared rate limit held back others that were due."""
        # The shards with a task due: a bucket whose head (its earliest) is. Right after
        # a claim that took all it could and left more due, those it was given: a loop
        # under load claims again at once, and counting 32 shards each time costs it
        # CPU and a round trip (a shard with nothing due left answers none).
        due = self._still_due or await due_shards(self.redis, keys.due_heads, to_ms(now))
        self._still_due = None
        if not due:
            return [], False
        bucket = [keys.UPSTREAM_BUCKET, keys.UPSTREAM_PAUSED]
        tokens = int(await self._take(keys=bucket, args=[to_ms(now), limit, self.rate, self.burst]))
        if tokens < 0:
            return [], False  # the upstream is paused
        if tokens == 0:
            return [], True
        if tokens < self.full_claim:
            claimed, more = await self._claim_scarce(due, tokens, lease, now)
        else:
            claimed, more = await self._claim_plenty(due, tokens, lease, now)
        left = tokens - len(claimed)
        if more and left == 0:
            self._still_due = due
        if left > 0:
            await self._refund(keys=[keys.UPSTREAM_BUCKET], args=[left, self.burst])
        return claimed, more and tokens < limit

    async def _claim_plenty(
        self, due: list[int], tokens: int, lease: float, now: float
    ) -> tuple[list[ClaimedPoll], bool]:
        """Tokens enough for many per shard: a share of at least PLENTY each from as
        few of the shards with something due as that takes, in turn (each shard shares
        its own fairly among its tenants; a shard is an even sample of every tenant's
        tasks), then what is left from the others."""

        async def take(shares: dict[int, int]) -> list[tuple[list[ClaimedPoll], bool]]:
            calls = [self._call(shard, now, n, lease, "take") for shard, n in shares.items()]
            replies = await run(self.redis, calls)
            claimed = await self._read_claimed(list(shares), replies)
            return [
                (found, bool(int(reply[2]))) for found, reply in zip(claimed, replies, strict=True)
            ]

        return await claim_over_shards(tokens, self._turn, take, due, PLENTY)

    async def _claim_scarce(
        self, due: list[int], tokens: int, lease: float, now: float
    ) -> tuple[list[ClaimedPoll], bool]:
        """Fewer tokens than shards could share fairly: every shard with something due
        names its fair pick (taking none), the picks are shared among all tenants one
        task each in turn, then each shard takes the ones chosen of it."""
        peek = min(tokens, 2 * SCARCE)
        shards = due
        peeks = await run(self.redis, [self._call(s, now, peek, lease, "peek") for s in shards])
        found: defaultdict[str, list[tuple[float, int, str]]] = defaultdict(list)
        for shard, (flat, _more) in zip(shards, peeks, strict=True):
            for i in range(0, len(flat), 3):
                found[str(flat[i + 1])].append((float(flat[i + 2]), shard, str(flat[i])))
        total = sum(len(v) for v in found.values())
        more = total > tokens or any(int(m) for _, m in peeks)
        if not more:
            # Room for every due task: all go, earliest first.
            chosen = [(shard, i) for _, shard, i in sorted(x for v in found.values() for x in v)]
        else:
            # Each tenant's earliest due first, whichever shard they are in.
            by_tenant = {t: [(shard, i) for _, shard, i in sorted(v)] for t, v in found.items()}
            chosen = round_robin(by_tenant, tokens, next(self._turn))
        per_shard = grouped(chosen, lambda c: c[0])
        calls = [
            self._call(shard, now, len(ids), lease, "ids", tuple(i for _, i in ids))
            for shard, ids in per_shard
        ]
        taken = [shard for shard, _ in per_shard]
        replies = await run(self.redis, calls)
        claimed = [c for found in await self._read_claimed(taken, replies) for c in found]
        order = {keys.full_id(compact): n for n, (_, compact) in enumerate(chosen)}
        claimed.sort(key=lambda c: order[c.task_id])
        return claimed, more

    def _call(
        self, shard: int, now: float, limit: int, lease: float, mode: str, ids: tuple[str, ...] = ()
    ) -> Call:
        args: list[str | int] = [to_ms(now), limit, to_ms(lease), mode]
        args += ids
        return Call(self._claim, keys.claim_keys(shard), args)

    async def _read_claimed(
        self, shards: list[int], replies: list[list[object]]
    ) -> list[list[ClaimedPoll]]:
        """The records of the tasks each shard's claim took (by compact id), read in one
        pipeline."""
        # A claim answers compact ids, each shard's its own: a task's place, record key
        # and all, follows from them without the full id.
        taken = [
            (lease, [keys.placed(i, shard) for i in ids])
            for shard, lease, ids in claimed_ids(shards, list(replies))
        ]
        raws = await mget_by_shard(self.redis, [[p.task for p in places] for _, places in taken])
        claimed: list[list[ClaimedPoll]] = []
        orphans: list[str] = []
        for (lease_ms, places), shard_raws in zip(taken, raws, strict=True):
            found: list[ClaimedPoll] = []
            for place, raw in zip(places, shard_raws, strict=True):
                task_id = keys.full_id(place.compact)
                record = TaskRecord.parse(task_id, raw)
                raw_state = record.raw_state if record else None
                if record is None or raw_state is None:
                    orphans.append(task_id)  # it expired: nothing left to poll
                    continue
                found.append(
                    ClaimedPoll(
                        task_id,
                        place,
                        raw_state,
                        record.state(),
                        record.polls,
                        lease_ms,
                        calls_back=record.calls_back,
                        signals=record.signals,
                    )
                )
            claimed.append(found)
        await self._drop_due(orphans)
        return claimed

    async def _drop_due(self, task_ids: list[str]) -> None:
        """Take tasks out of the schedule, each bucket's head kept exact (DROP_DUE)."""
        buckets = grouped(task_ids, lambda t: (keys.shard_of(t), keys.due_bucket_of(t)))
        calls = [
            Call(
                self._drop,
                [keys.due_heads(shard), keys.due_buckets(shard)[bucket]],
                [bucket, *(keys.compact_id(t) for t in ids)],
            )
            for (shard, bucket), ids in buckets
        ]
        await run(self.redis, calls)

    async def apply(self, outcomes: list[Outcome], now: float) -> Applied:
        """Write outcomes in one script call; each answers 'ok', 'lost', 'conflict' or
        'error' (that one failed; the others were written all the same)."""
        if not outcomes:
            return Applied([], [])
        places = [o.place or keys.place_of(o.task_id) for o in outcomes]
        by_shard = grouped(range(len(outcomes)), lambda i: places[i].shard)
        calls = []
        for shard, indexes in by_shard:
            call_keys = keys.apply_keys(shard)
            packed: list[list[str | int]] = []
            for index in indexes:
                place = places[index]
                call_keys += (place.task, place.due_bucket, place.fair_bucket)
                # The record's index in KEYS (Lua counts from 1), then its values.
                packed.append([len(call_keys) - 2, *self._args(outcomes[index], place, now)])
            # One argument for all of them: redis-py packs each argument in Python.
            args: list[str | int | float | bytes] = [
                to_ms(now),
                self.retention,
                keys.FINALS,
                keys.DUE_BUCKETS,
                _PACK(packed),
            ]
            calls.append(Call(self._apply, call_keys, args))
        answers: list[str] = [""] * len(outcomes)
        skipped: list[tuple[str, str]] = []
        untracked: list[tuple[str, str]] = []
        for (_, indexes), (replies, skips, ended) in zip(
            by_shard, await run(self.redis, calls), strict=True
        ):
            for index, reply in zip(indexes, replies, strict=True):
                answers[index] = str(reply)
            skipped += [_pair(s) for s in skips]
            untracked += [_pair(s) for s in ended]
        if untracked:
            await self.untrack(untracked)
        return Applied(answers, skipped)

    async def untrack(self, pairs: list[tuple[str, str]]) -> None:
        """Take ended tasks out of their tenants' quotas: (task id, tenant) each."""
        await self._quota.release(tenant for _, tenant in pairs)

    def _args(self, outcome: Outcome, place: keys.Place, now: float) -> list[str]:
        step = outcome.step
        state = step.state
        next_due = ""
        if step.delay is not None:
            next_due = str(to_ms(min(now + step.delay, state.deadline_at)))
        event_id, event_json = "", ""
        if step.event is not None:
            # Unique within its task, the only place it is looked up.
            event_id = "evt_" + uuid.uuid4().hex[:12]
            event_json = dump_event(
                Event(type=step.event, at=now, state=state, polls=outcome.polls_after),
                final=step.delay is None,
            )
        # Strings, as Lua compares them (ARGV values were strings before they were packed).
        return [
            place.compact,
            "" if outcome.lease is None else str(outcome.lease),
            outcome.raw_state,
            outcome.raw_state if state == outcome.before else dump_state(state),
            "1" if outcome.count_poll else "0",
            next_due,
            step.event or "",
            event_id,
            event_json,
            "" if outcome.signals_after is None else str(outcome.signals_after),
        ]

    async def signal(self, task_id: str, now: float, signals: int) -> bool:
        """The upstream called back for a task: poll it now. False if nobody tracks it."""
        reply = await self._signal(
            keys=keys.signal_keys(task_id),
            args=[keys.compact_id(task_id), to_ms(now), signals, keys.DUE_BUCKETS],
        )
        return str(reply) == "signalled"

    async def pause_upstream(self, until: float) -> None:
        """Hold every worker's calls to the upstream until `until` (a Retry-After)."""
        # The key outlives the pause a little; the claim script compares the time itself.
        await self.redis.set(
            keys.UPSTREAM_PAUSED, to_ms(until), px=max(1, to_ms(until - time.time())) + 1000
        )

    async def mark_unauthorized(self, now: float, pause: float) -> None:
        """The upstream refused the key: every worker holds its calls for `pause`."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.UPSTREAM_UNAUTHORIZED, to_ms(now))
            pipe.set(keys.UPSTREAM_PAUSED, to_ms(now + pause), px=to_ms(pause) + 1000)
            await pipe.execute()

    async def clear_unauthorized(self) -> bool:
        """Clear the refused-key flag; True if it was set."""
        return bool(await self.redis.delete(keys.UPSTREAM_UNAUTHORIZED))

    async def unauthorized_since(self) -> float | None:
        raw = await self.redis.get(keys.UPSTREAM_UNAUTHORIZED)
        return int(raw) / 1000 if raw else None


_PACK = msgspec.msgpack.Encoder().encode  # read by Lua's cmsgpack (APPLY)


def _pair(value: object) -> tuple[str, str]:
    """(task id, tenant) of '<compact task id> <tenant>' as the scripts answer it."""
    compact, _, tenant = str(value).partition(" ")
    return keys.full_id(compact), tenant
