"""The broker: one object holding the state, with each concept's operations mixed in."""

from __future__ import annotations

from local_stack.pubsub.admin import Admin
from local_stack.pubsub.push import Pushes


class Broker(Admin, Pushes):
    """Topics and subscriptions (`admin`), delivery (`delivery`), push leases (`push`)."""
