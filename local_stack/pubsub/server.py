"""The emulator in-process: the broker, its push loop and the gRPC server on one port."""

from __future__ import annotations

from concurrent import futures

import grpc

from local_stack.pubsub.broker import Broker
from local_stack.pubsub.push import Pusher
from local_stack.pubsub.rules import MAX_PUBLISH_BYTES
from local_stack.pubsub.service import publisher_handlers, schema_handlers, subscriber_handlers

# gRPC's synchronous server runs each call on a pool thread, and a StreamingPull stream
# keeps its thread for its life. With a fixed small pool, long-lived streams starve every
# other call (64 streams did, issue #18); this pool grows a thread only when none is idle,
# so it costs nothing until streams are open. Past MAX_CALLS, calls are refused with
# RESOURCE_EXHAUSTED instead of waiting forever.
MAX_CALLS = 4096
# Publishes of up to 10 MB (the service's limit, which rules.validate_publish enforces)
# must reach the handler, and pulls of that much must leave: gRPC's default is 4 MiB.
MAX_MESSAGE_BYTES = 2 * MAX_PUBLISH_BYTES


class PubSubEmulator:
    """The emulator in-process: `port = PubSubEmulator().start()`; `stop()` when done."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.broker = Broker()
        self.pusher = Pusher(self.broker)
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_CALLS, thread_name_prefix="rpc"),
            maximum_concurrent_rpcs=MAX_CALLS,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self.server.add_generic_rpc_handlers(
            (
                publisher_handlers(self.broker),
                subscriber_handlers(self.broker),
                schema_handlers(self.broker),
            )
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> int:
        self.port = self.server.add_insecure_port(f"{self.host}:{self.port}")
        if not self.port:
            raise OSError(f"cannot bind {self.host}")
        self.server.start()
        self.pusher.thread.start()
        return self.port

    def stop(self) -> None:
        self.server.stop(grace=0.5).wait()
        self.pusher.stop()
