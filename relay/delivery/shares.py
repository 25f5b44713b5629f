"""Each tenant's share of one worker's delivery slots.

A worker process has `slots` delivery slots (`RELAY_DELIVERY_CONCURRENCY`).
The per-receiver bound (`relay.store.breaker`) keeps one receiver from
taking them all, but one tenant with hundreds of distinct slow receivers
could still: its attempts, each held for the whole delivery timeout, would
leave no slot for anyone else's. So a tenant's attempts in flight in a worker
are bounded by its share:

- a tenant alone with work there may hold all slots but `reserve(slots)`;
  those few stay free so that another tenant's first deliveries go out at
  once instead of waiting for a stuck attempt to end;
- with `n` tenants with work there, each may hold `(slots - reserve) / n`,
  never less than `FLOOR` (nor more than `slots - reserve`).

A tenant has work in a worker while it has attempts in flight there, or had
a delivery claimed there in the last `ACTIVE` seconds. A delivery over its
tenant's share waits, parked without spending an attempt, until that share
has room again: one of the tenant's attempts there ended, or another tenant's
work there did. The bound is per worker process: N workers let a tenant hold
N shares, and a delivery one worker parked is released by that worker (or
comes back by itself within 30 to 60 s, as every parked delivery does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

FLOOR = 8  # attempts in flight one tenant may always have in a worker, however many share it
RESERVE = 8  # slots a lone tenant leaves free for the next tenant's first deliveries
ACTIVE = 1.0  # seconds a tenant counts as having work after its last claimed delivery


def reserve(slots: int) -> int:
    """Slots kept from a lone tenant: `RESERVE`, but at most a quarter of a small worker."""
    return min(RESERVE, slots // 4)


def share(slots: int, tenants: int) -> int:
    """Attempts in flight one tenant may hold in a worker of `slots` slots where
    `tenants` tenants (it included) have work."""
    usable = slots - reserve(slots)
    return max(min(FLOOR, usable), usable // max(tenants, 1))


class TenantSlots:
    """One worker's count of attempts in flight per tenant, and what each may still start."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.flying: Counter[str] = Counter()
        self._seen: dict[str, float] = {}  # tenant -> when a delivery of it was last claimed
        # Tenants with deliveries this worker parked over their share, not yet all released.
        self._parked: set[str] = set()

    def room(self, tenants: Iterable[str], now: float) -> dict[str, int]:
        """For each tenant of a claimed batch (`now`: a monotonic time), how many more
        attempts it may start here."""
        batch = set(tenants)
        for tenant in batch:
            self._seen[tenant] = now
        each = self._share(now)
        return {tenant: max(0, each - self.flying[tenant]) for tenant in batch}

    def started(self, tenant: str) -> None:
        self.flying[tenant] += 1

    def ended(self, tenant: str) -> None:
        self.flying[tenant] -= 1
        if self.flying[tenant] <= 0:
            del self.flying[tenant]

    def parked(self, tenant: str) -> None:
        """A delivery of `tenant` was parked over its share."""
        self._parked.add(tenant)

    def releasable(self, now: float) -> dict[str, int]:
        """For each tenant with deliveries parked here over its share, how many may go now."""
        if not self._parked:
            return {}
        each = self._share(now)
        wanted = {t: each - self.flying[t] for t in self._parked}
        return {t: n for t, n in wanted.items() if n > 0}

    def drained(self, tenants: Iterable[str]) -> None:
        """A release found none of these tenants' deliveries left parked (called before
        anything more is parked)."""
        self._parked.difference_update(tenants)

    def _share(self, now: float) -> int:
        self._seen = {t: at for t, at in self._seen.items() if now - at <= ACTIVE}
        return share(self.slots, len(self._seen.keys() | self.flying.keys()))
