"""StreamingPull: acks and deadline changes in, batches of messages out, on one stream.

A stream owns the leases it hands out: when it ends (the client cancels, closes, or goes
away), the messages the client never confirmed (no receipt modack or ack came, so they
were still in flight or in a buffer) are due again at once, rather than after their lease.
The client confirms every message it takes in with a modack at once
(StreamingPullManager._on_response in google-cloud-pubsub).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import grpc
from google.pubsub_v1 import types

from local_stack.pubsub.broker import Broker
from local_stack.pubsub.errors import RpcError

log = logging.getLogger("local_stack.pubsub")

BATCH = 100  # messages per response at most
IDLE_WAIT = 0.5  # how long one wait for messages lasts before the stream looks again


class _Stream:
    """One stream's settings and leases."""

    def __init__(self, broker: Broker, first: types.StreamingPullRequest) -> None:
        self.broker = broker
        self.name = first.subscription
        self.lease: float | None = first.stream_ack_deadline_seconds or None
        self.max_outstanding = first.max_outstanding_messages  # 0: no limit
        self.sent: set[str] = set()  # ack ids handed out on this stream
        self.ended = threading.Event()

    def apply(self, request: types.StreamingPullRequest) -> None:
        """Acks and deadline changes that come on the stream (failures are not reported
        on a stream, as on the service: the client learns of them from unary calls)."""
        if request.stream_ack_deadline_seconds:
            self.lease = request.stream_ack_deadline_seconds
        if request.ack_ids:
            self.broker.acknowledge(self.name, list(request.ack_ids), strict=False)
        pairs = zip(request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=False)
        for ack_id, seconds in pairs:
            self.broker.modify_ack_deadline(self.name, [ack_id], seconds, strict=False)

    def read_rest(self, requests_in: Iterator, context: grpc.ServicerContext) -> None:
        try:
            for request in requests_in:
                self.apply(request)
        except grpc.RpcError:
            pass  # the client went away
        except RpcError as error:
            log.info("streaming pull on %s: %s", self.name, error)
            context.cancel()
        finally:
            self.end()

    def end(self) -> None:
        self.ended.set()
        with self.broker.lock:
            self.broker.changed.notify_all()

    def room(self) -> int:
        """How many more messages the client's flow control lets out (max_outstanding)."""
        if not self.max_outstanding:
            return BATCH
        self.sent = self.broker.outstanding(self.name, self.sent)
        return max(0, min(BATCH, self.max_outstanding - len(self.sent)))

    def responses(self) -> Iterator[types.StreamingPullResponse]:
        subscription = self.broker.subscription(self.name)
        properties = types.StreamingPullResponse.SubscriptionProperties(
            exactly_once_delivery_enabled=subscription.enable_exactly_once_delivery,
            message_ordering_enabled=subscription.enable_message_ordering,
        )
        while not self.ended.is_set():
            received = self.broker.pull(
                self.name, self.room(), wait=IDLE_WAIT, lease=self.lease, stop=self.ended.is_set
            )
            if received:
                self.sent.update(m.ack_id for m in received)
                yield types.StreamingPullResponse(
                    received_messages=received, subscription_properties=properties
                )


def streaming_pull(broker: Broker) -> Callable:
    """The StreamingPull method handler."""

    def stream(requests_in: Iterator, context: grpc.ServicerContext):
        state: _Stream | None = None
        try:
            first = next(requests_in)
            state = _Stream(broker, first)
            context.add_callback(state.end)
            broker.subscription(state.name)
            state.apply(first)
            reader = threading.Thread(
                target=state.read_rest, args=(requests_in, context), daemon=True
            )
            reader.start()
            yield from state.responses()
        except StopIteration:
            return
        except RpcError as error:
            context.abort(error.code, str(error))
        except Exception as error:
            log.exception("streaming pull failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            # Also when gRPC closes this generator because a response could not be sent.
            if state is not None:
                state.ended.set()
                if released := broker.release(state.name, state.sent):
                    log.info("stream on %s ended: %d unconfirmed released", state.name, released)

    return grpc.stream_stream_rpc_method_handler(
        stream,
        request_deserializer=types.StreamingPullRequest.deserialize,
        response_serializer=types.StreamingPullResponse.serialize,
    )
