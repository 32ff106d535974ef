"""The failures the emulator answers with, as the gRPC status codes Google's service uses."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2


class RpcError(Exception):
    """A failure with the gRPC status code the client should see."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, message)


def already_exists(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.ALREADY_EXISTS, message)


class AckIdFailure(RpcError):
    """Exactly-once delivery: ack ids that are unknown or expired, each named in an
    ErrorInfo's metadata as the service does (the client fails those acks' futures with
    AcknowledgeStatus.INVALID_ACK_ID and retries TRANSIENT_ ones; see
    google/cloud/pubsub_v1/subscriber/_protocol/streaming_pull_manager.py, _process_requests).
    """

    def __init__(self, ack_ids: list[str]) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, "Some acknowledgement ids are invalid")
        self.info = error_details_pb2.ErrorInfo(
            reason="EXACTLY_ONCE_ACKID_FAILURE",
            domain="pubsub.googleapis.com",
            metadata={ack_id: "PERMANENT_FAILURE_INVALID_ACK_ID" for ack_id in ack_ids},
        )
