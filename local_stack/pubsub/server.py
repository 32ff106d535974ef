"""The emulator in-process: the broker, its push loop and the gRPC server on one port."""

from __future__ import annotations

from concurrent import futures

import grpc

from local_stack.pubsub.broker import Broker
from local_stack.pubsub.push import Pusher
from local_stack.pubsub.service import publisher_handlers, subscriber_handlers


class PubSubEmulator:
    """The emulator in-process: `port = PubSubEmulator().start()`; `stop()` when done."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.broker = Broker()
        self.pusher = Pusher(self.broker)
        # Each StreamingPull stream holds a worker for its lifetime.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
        self.server.add_generic_rpc_handlers(
            (publisher_handlers(self.broker), subscriber_handlers(self.broker))
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
