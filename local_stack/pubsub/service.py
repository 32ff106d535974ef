"""The gRPC wiring: the Publisher and Subscriber services as tables of broker calls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1 import types

from local_stack.pubsub.broker import Broker
from local_stack.pubsub.errors import RpcError
from local_stack.pubsub.streaming import streaming_pull

log = logging.getLogger("local_stack.pubsub")

PULL_WAIT = 2.0  # how long a Pull without return_immediately waits for a first message


def _unary(rpc: str, function: Callable, request_type: Any, response_type: Any):
    """One unary method. Our errors become their status codes; anything unexpected is
    INTERNAL, never UNKNOWN (which the client would retry for a minute)."""
    empty = response_type is empty_pb2.Empty

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            result = function(request)
        except RpcError as error:
            context.abort(error.code, str(error))
        except Exception as error:
            log.exception("%s failed", rpc)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        return empty_pb2.Empty() if empty else result

    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_type.deserialize,
        response_serializer=response_type.SerializeToString if empty else response_type.serialize,
    )


def _service(name: str, methods: dict[str, tuple], **streams: Any) -> grpc.GenericRpcHandler:
    handlers = {rpc: _unary(rpc, *spec) for rpc, spec in methods.items()}
    return grpc.method_handlers_generic_handler(name, handlers | streams)


def publisher_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def publish(request: types.PublishRequest) -> types.PublishResponse:
        ids = broker.publish(request.topic, list(request.messages))
        return types.PublishResponse(message_ids=ids)

    return _service(
        "google.pubsub.v1.Publisher",
        {
            "CreateTopic": (broker.create_topic, types.Topic, types.Topic),
            "GetTopic": (lambda r: broker.topic(r.topic), types.GetTopicRequest, types.Topic),
            "ListTopics": (
                lambda r: types.ListTopicsResponse(topics=broker.list_topics(r.project)),
                types.ListTopicsRequest,
                types.ListTopicsResponse,
            ),
            "ListTopicSubscriptions": (
                lambda r: types.ListTopicSubscriptionsResponse(
                    subscriptions=broker.topic_subscriptions(r.topic)
                ),
                types.ListTopicSubscriptionsRequest,
                types.ListTopicSubscriptionsResponse,
            ),
            "DeleteTopic": (
                lambda r: broker.delete_topic(r.topic),
                types.DeleteTopicRequest,
                empty_pb2.Empty,
            ),
            "Publish": (publish, types.PublishRequest, types.PublishResponse),
        },
    )


def subscriber_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def pull(request: types.PullRequest) -> types.PullResponse:
        wait = 0.0 if request.return_immediately else PULL_WAIT
        received = broker.pull(request.subscription, request.max_messages or 1, wait)
        return types.PullResponse(received_messages=received)

    empty = empty_pb2.Empty
    return _service(
        "google.pubsub.v1.Subscriber",
        {
            "CreateSubscription": (
                broker.create_subscription,
                types.Subscription,
                types.Subscription,
            ),
            "GetSubscription": (
                lambda r: broker.subscription(r.subscription),
                types.GetSubscriptionRequest,
                types.Subscription,
            ),
            "ListSubscriptions": (
                lambda r: types.ListSubscriptionsResponse(
                    subscriptions=broker.list_subscriptions(r.project)
                ),
                types.ListSubscriptionsRequest,
                types.ListSubscriptionsResponse,
            ),
            "DeleteSubscription": (
                lambda r: broker.delete_subscription(r.subscription),
                types.DeleteSubscriptionRequest,
                empty,
            ),
            "UpdateSubscription": (
                lambda r: broker.update_subscription(r.subscription, list(r.update_mask.paths)),
                types.UpdateSubscriptionRequest,
                types.Subscription,
            ),
            "ModifyPushConfig": (
                lambda r: broker.modify_push_config(r.subscription, r.push_config),
                types.ModifyPushConfigRequest,
                empty,
            ),
            "Pull": (pull, types.PullRequest, types.PullResponse),
            "Acknowledge": (
                lambda r: broker.acknowledge(r.subscription, list(r.ack_ids)),
                types.AcknowledgeRequest,
                empty,
            ),
            "ModifyAckDeadline": (
                lambda r: broker.modify_ack_deadline(
                    r.subscription, list(r.ack_ids), r.ack_deadline_seconds
                ),
                types.ModifyAckDeadlineRequest,
                empty,
            ),
        },
        StreamingPull=streaming_pull(broker),
    )
