"""StreamingPull: acks and deadline changes in, batches of messages out, on one stream."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import grpc
from google.pubsub_v1 import types

from local_stack.pubsub.broker import Broker
from local_stack.pubsub.errors import RpcError

log = logging.getLogger("local_stack.pubsub")


def streaming_pull(broker: Broker) -> Callable:
    """The StreamingPull method handler."""

    def apply(name: str, request: types.StreamingPullRequest) -> None:
        if request.ack_ids:
            broker.acknowledge(name, list(request.ack_ids))
        pairs = zip(request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=False)
        for ack_id, seconds in pairs:
            broker.modify_ack_deadline(name, [ack_id], seconds)

    def read_rest(name: str, requests_in: Iterator, context: grpc.ServicerContext) -> None:
        try:
            for request in requests_in:
                apply(name, request)
        except grpc.RpcError:
            pass  # the client went away
        except RpcError as error:
            log.info("streaming pull on %s: %s", name, error)
            context.cancel()

    def stream(requests_in: Iterator, context: grpc.ServicerContext):
        try:
            first = next(requests_in)
            name = first.subscription
            broker.subscription(name)
            apply(name, first)
            lease = first.stream_ack_deadline_seconds or None
            reader = threading.Thread(
                target=read_rest, args=(name, requests_in, context), daemon=True
            )
            reader.start()
            while context.is_active():
                received = broker.pull(name, 100, wait=0.5, lease=lease)
                if received:
                    yield types.StreamingPullResponse(received_messages=received)
        except StopIteration:
            return
        except RpcError as error:
            context.abort(error.code, str(error))
        except Exception as error:
            log.exception("streaming pull failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")

    return grpc.stream_stream_rpc_method_handler(
        stream,
        request_deserializer=types.StreamingPullRequest.deserialize,
        response_serializer=types.StreamingPullResponse.serialize,
    )
