"""Snapshots and Seek: replaying a subscription's backlog from a snapshot or a time.

Source: the comments of CreateSnapshotRequest, Snapshot and SeekRequest in pubsub.proto
(google/pubsub_v1/types/pubsub.py): a snapshot keeps the subscription's unacknowledged
messages and everything published to its topic afterwards, and expires 7 days minus the
age of the oldest of them; seeking to a time marks retained messages published before it
acknowledged and those after it unacknowledged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from google.pubsub_v1 import types

from local_stack.pubsub.delivery import Delivery
from local_stack.pubsub.errors import RpcError, already_exists, invalid
from local_stack.pubsub.paging import page
from local_stack.pubsub.rules import SNAPSHOT_RE, masked_update
from local_stack.pubsub.state import DELETED_TOPIC, Pending, Snapshot, Subscription

SNAPSHOT_LIFETIME = timedelta(days=7)
IMMUTABLE_SNAPSHOT = {"name", "topic"}


class Snapshots(Delivery):
    def create_snapshot(
        self, name: str, subscription_name: str, labels: dict[str, str]
    ) -> types.Snapshot:
        if not name:  # the service picks a name in the subscription's project
            project = subscription_name.split("/")[1] if "/" in subscription_name else ""
            name = f"projects/{project}/snapshots/s-{uuid.uuid4().hex[:12]}"
        if not SNAPSHOT_RE.match(name):
            raise invalid(f"Invalid [snapshots] name: ({name})")
        with self.lock:
            subscription = self._subscription(subscription_name)
            if subscription.proto.topic == DELETED_TOPIC:
                raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, "The topic was deleted")
            self._prune_snapshots()
            if name in self.snapshots:
                raise already_exists("Snapshot already exists")
            backlog = {i: p.message for i, p in subscription.queue.items()}
            oldest = min((p.published for p in subscription.queue.values()), default=None)
            start = datetime.fromtimestamp(oldest, UTC) if oldest else datetime.now(UTC)
            proto = types.Snapshot(
                name=name,
                topic=subscription.proto.topic,
                expire_time=start + SNAPSHOT_LIFETIME,
                labels=labels,
            )
            self.snapshots[name] = Snapshot(proto, backlog)
            return proto

    def _prune_snapshots(self) -> None:
        now = datetime.now(UTC)
        for name, snapshot in list(self.snapshots.items()):
            if snapshot.proto.expire_time <= now:
                del self.snapshots[name]

    def snapshot(self, name: str) -> types.Snapshot:
        with self.lock:
            self._prune_snapshots()
            return self._snapshot(name).proto

    def list_snapshots(
        self, project: str, size: int = 0, token: str = ""
    ) -> tuple[list[types.Snapshot], str]:
        with self.lock:
            self._prune_snapshots()
            names = sorted(n for n in self.snapshots if n.startswith(f"{project}/"))
            return page(names, [self.snapshots[n].proto for n in names], size, token)

    def update_snapshot(self, patch: types.Snapshot, paths: list[str]) -> types.Snapshot:
        with self.lock:
            snapshot = self._snapshot(patch.name)
            snapshot.proto = masked_update(snapshot.proto, patch, paths, IMMUTABLE_SNAPSHOT)
            return snapshot.proto

    def delete_snapshot(self, name: str) -> None:
        with self.lock:
            self._snapshot(name)
            del self.snapshots[name]

    def seek(self, name: str, moment: datetime | None, snapshot_name: str) -> None:
        """Seeks to a snapshot, or else to `moment`; messages out for delivery may come
        again."""
        with self.lock:
            subscription = self._subscription(name)
            known = subscription.retained | {i: p.message for i, p in subscription.queue.items()}
            if snapshot_name:
                self._prune_snapshots()
                snapshot = self._snapshot(snapshot_name)
                if snapshot.proto.topic != subscription.proto.topic:
                    raise invalid(
                        f"The snapshot's topic ({snapshot.proto.topic}) is not the "
                        f"subscription's ({subscription.proto.topic})"
                    )
                unacked = dict(snapshot.messages)
            elif moment is not None:
                unacked = {i: m for i, m in known.items() if m.publish_time >= moment}
            else:
                raise invalid("Seek needs a time or a snapshot")
            self._reset(subscription, unacked, known)
            self.changed.notify_all()

    def _reset(
        self,
        subscription: Subscription,
        unacked: dict[str, types.PubsubMessage],
        known: dict[str, types.PubsubMessage],
    ) -> None:
        """The backlog becomes `unacked`, in publish order; the rest of what is known is
        acknowledged (lock held)."""
        subscription.queue = {
            i: Pending(m, m.publish_time.timestamp())
            for i, m in sorted(unacked.items(), key=lambda item: int(item[0]))
            if subscription.wants(m)
        }
        subscription.retained = {}
        if self._retains(subscription):
            acked = {i: m for i, m in known.items() if i not in subscription.queue}
            subscription.retained = dict(sorted(acked.items(), key=lambda item: int(item[0])))
