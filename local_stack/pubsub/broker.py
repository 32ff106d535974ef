"""The broker: one object holding the state, with each concept's operations mixed in."""

from __future__ import annotations

from local_stack.pubsub.admin import Admin
from local_stack.pubsub.push import Pushes
from local_stack.pubsub.snapshots import Snapshots


class Broker(Admin, Pushes, Snapshots):
    """Topics and subscriptions (`admin`), delivery (`delivery`), push leases (`push`),
    snapshots and seek (`snapshots`)."""
