"""Everything the relay keeps lives in Redis; this package is the only code that touches it.

`Registry` serves the API (registrations, reads, deliveries listing, redeliver),
`PollQueue` the worker's polling, `DeliveryQueue` its webhook deliveries.
"""

from relay.store.deliveries import ClaimedDelivery, DeliveryQueue
from relay.store.polls import ClaimedPoll, PollQueue
from relay.store.redis import connect
from relay.store.registry import RegisterOutcome, Registry

__all__ = [
    "ClaimedDelivery",
    "ClaimedPoll",
    "DeliveryQueue",
    "PollQueue",
    "RegisterOutcome",
    "Registry",
    "connect",
]
