"""The delivery queue: one outbox per subscription, its head claimed under a lease."""

from __future__ import annotations

import dataclasses
import re

from redis.asyncio import Redis

from relay.core.model import Ending, Event, Registration
from relay.store import keys, scripts
from relay.store.codec import dump, load_event, load_registration
from relay.store.redis import to_ms

# Every delivery id has the shape the fan-out script gives it ('dlv_' and 26 hex digits
# of a SHA-1, scripts._FAN_OUT). Anything else names no delivery and must not reach
# Redis: with a suffix such as `:attempts` it would name another key of another type.
DELIVERY_ID = re.compile(r"dlv_[0-9a-f]{26}")


def is_delivery_id(value: str) -> bool:
    return DELIVERY_ID.fullmatch(value) is not None


@dataclasses.dataclass(frozen=True)
class ClaimedDelivery:
    id: str
    task_id: str
    tenant: str
    rid: str
    event_id: str
    type: str
    attempt: int  # attempts already made in this series
    superseded: bool
    webhook_id: str
    registration: Registration | None  # None once the registration was deleted
    event: Event | None
    lease: int

    @property
    def orphaned(self) -> bool:
        """Its registration was deleted (or replaced) or its event expired: send nothing."""
        return (
            self.registration is None
            or self.registration.rid != self.rid
            or self.registration.webhook_url is None
            or self.event is None
        )


@dataclasses.dataclass(frozen=True)
class Finish:
    delivery: ClaimedDelivery
    ending: Ending
    attempt: dict[str, object] | None = None
    next_due: float | None = None  # for a retry


class DeliveryQueue:
    def __init__(self, redis: Redis, *, retention: float) -> None:
        self.redis = redis
        self.retention = max(1, to_ms(retention))  # ms: settings accept fractions
        self._claim = redis.register_script(scripts.CLAIM_DELIVERIES)
        self._finish = redis.register_script(scripts.FINISH_DELIVERY)

    async def claim(self, limit: int, lease: float, now: float) -> list[ClaimedDelivery]:
        reply = await self._claim(args=[keys.PREFIX, to_ms(now), limit, to_ms(lease)])
        if not reply:
            return []
        lease_ms, flat = int(reply[0]), reply[1]
        claimed = []
        for i in range(0, len(flat), 12):
            (
                did,
                task_id,
                tenant,
                rid,
                event_id,
                etype,
                attempt,
                superseded,
                webhook_id,
                raw_reg,
                raw_event,
                raw_metadata,
            ) = flat[i : i + 12]
            claimed.append(
                ClaimedDelivery(
                    id=did,
                    task_id=task_id,
                    tenant=tenant,
                    rid=rid,
                    event_id=event_id,
                    type=etype,
                    attempt=int(attempt or 0),
                    superseded=superseded == "1",
                    webhook_id=webhook_id,
                    registration=(
                        load_registration(raw_reg, tenant, task_id, raw_metadata)
                        if raw_reg
                        else None
                    ),
                    event=load_event(raw_event) if raw_event else None,
                    lease=lease_ms,
                )
            )
        return claimed

    async def finish(self, finishes: list[Finish], now: float) -> list[str]:
        """Record attempts in one script call; each answers 'ok', 'lost' or 'missing'."""
        if not finishes:
            return []
        args: list[str | int] = [keys.PREFIX, to_ms(now), self.retention]
        for f in finishes:
            args += [
                f.delivery.id,
                f.delivery.lease,
                f.ending,
                "" if f.next_due is None else to_ms(f.next_due),
                "" if f.attempt is None else dump(f.attempt),
            ]
        return [str(r) for r in await self._finish(args=args)]

    async def due_count(self) -> int:
        return int(await self.redis.zcard(keys.DELIVERY_DUE))
