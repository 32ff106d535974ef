"""The gRPC wiring: the Publisher, Subscriber and SchemaService services as tables of broker
calls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, empty_pb2
from google.pubsub_v1 import types
from google.rpc import status_pb2
from grpc_status import rpc_status

from local_stack.pubsub.broker import Broker
from local_stack.pubsub.errors import AckIdFailure, RpcError, invalid
from local_stack.pubsub.streaming import streaming_pull

log = logging.getLogger("local_stack.pubsub")

PULL_WAIT = 2.0  # how long a Pull without return_immediately waits for a first message


def abort(context: grpc.ServicerContext, error: RpcError) -> None:
    """Ends the call with the error's code, and its ErrorInfo where it has one."""
    if isinstance(error, AckIdFailure):
        detail = any_pb2.Any()
        detail.Pack(error.info)
        status = status_pb2.Status(code=error.code.value[0], message=str(error), details=[detail])
        context.abort_with_status(rpc_status.to_status(status))
    context.abort(error.code, str(error))


def _unary(rpc: str, function: Callable, request_type: Any, response_type: Any):
    """One unary method. Our errors become their status codes; anything unexpected is
    INTERNAL, never UNKNOWN (which the client would retry for a minute)."""
    empty = response_type is empty_pb2.Empty

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            result = function(request)
        except RpcError as error:
            abort(context, error)
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


def _paged(list_call: Callable, response_type: Any, field: str, parent: str) -> tuple:
    """A List method: `list_call(parent, page_size, page_token)` → a paged response."""

    def handler(request: Any) -> Any:
        items, token = list_call(getattr(request, parent), request.page_size, request.page_token)
        return response_type(**{field: items, "next_page_token": token})

    return (
        handler,
        getattr(types, response_type.__name__.replace("Response", "Request")),
        (response_type),
    )


def publisher_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def publish(request: types.PublishRequest) -> types.PublishResponse:
        size = types.PublishRequest.pb(request).ByteSize()
        ids = broker.publish(request.topic, list(request.messages), size)
        return types.PublishResponse(message_ids=ids)

    return _service(
        "google.pubsub.v1.Publisher",
        {
            "CreateTopic": (broker.create_topic, types.Topic, types.Topic),
            "GetTopic": (lambda r: broker.topic(r.topic), types.GetTopicRequest, types.Topic),
            "UpdateTopic": (
                lambda r: broker.update_topic(r.topic, list(r.update_mask.paths)),
                types.UpdateTopicRequest,
                types.Topic,
            ),
            "ListTopics": _paged(broker.list_topics, types.ListTopicsResponse, "topics", "project"),
            "ListTopicSubscriptions": _paged(
                broker.topic_subscriptions,
                types.ListTopicSubscriptionsResponse,
                "subscriptions",
                "topic",
            ),
            "ListTopicSnapshots": _paged(
                broker.topic_snapshots, types.ListTopicSnapshotsResponse, "snapshots", "topic"
            ),
            "DeleteTopic": (
                lambda r: broker.delete_topic(r.topic),
                types.DeleteTopicRequest,
                empty_pb2.Empty,
            ),
            "DetachSubscription": (
                lambda r: (
                    broker.detach_subscription(r.subscription) or types.DetachSubscriptionResponse()
                ),
                types.DetachSubscriptionRequest,
                types.DetachSubscriptionResponse,
            ),
            "Publish": (publish, types.PublishRequest, types.PublishResponse),
        },
    )


def subscriber_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def pull(request: types.PullRequest) -> types.PullResponse:
        if request.max_messages <= 0:
            raise invalid("max_messages must be a positive integer")
        wait = 0.0 if request.return_immediately else PULL_WAIT
        received = broker.pull(request.subscription, request.max_messages, wait)
        return types.PullResponse(received_messages=received)

    def seek(request: types.SeekRequest) -> types.SeekResponse:
        moment = request.time if "time" in request else None
        broker.seek(request.subscription, moment, request.snapshot)
        return types.SeekResponse()

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
            "ListSubscriptions": _paged(
                broker.list_subscriptions,
                types.ListSubscriptionsResponse,
                "subscriptions",
                "project",
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
            "CreateSnapshot": (
                lambda r: broker.create_snapshot(r.name, r.subscription, dict(r.labels)),
                types.CreateSnapshotRequest,
                types.Snapshot,
            ),
            "GetSnapshot": (
                lambda r: broker.snapshot(r.snapshot),
                types.GetSnapshotRequest,
                types.Snapshot,
            ),
            "ListSnapshots": _paged(
                broker.list_snapshots, types.ListSnapshotsResponse, "snapshots", "project"
            ),
            "UpdateSnapshot": (
                lambda r: broker.update_snapshot(r.snapshot, list(r.update_mask.paths)),
                types.UpdateSnapshotRequest,
                types.Snapshot,
            ),
            "DeleteSnapshot": (
                lambda r: broker.delete_snapshot(r.snapshot),
                types.DeleteSnapshotRequest,
                empty,
            ),
            "Seek": (seek, types.SeekRequest, types.SeekResponse),
        },
        StreamingPull=streaming_pull(broker),
    )


def schema_handlers(broker: Broker) -> grpc.GenericRpcHandler:
    def listed(list_call: Callable, response_type: Any, request_type: Any, parent: str) -> tuple:
        def handler(request: Any) -> Any:
            schemas, token = list_call(
                getattr(request, parent), request.view, request.page_size, request.page_token
            )
            return response_type(schemas=schemas, next_page_token=token)

        return handler, request_type, response_type

    empty = empty_pb2.Empty
    return _service(
        "google.pubsub.v1.SchemaService",
        {
            "CreateSchema": (
                lambda r: broker.create_schema(r.parent, r.schema, r.schema_id),
                types.CreateSchemaRequest,
                types.Schema,
            ),
            "GetSchema": (
                lambda r: broker.schema(r.name, r.view),
                types.GetSchemaRequest,
                types.Schema,
            ),
            "ListSchemas": listed(
                broker.list_schemas, types.ListSchemasResponse, types.ListSchemasRequest, "parent"
            ),
            "ListSchemaRevisions": listed(
                broker.list_schema_revisions,
                types.ListSchemaRevisionsResponse,
                types.ListSchemaRevisionsRequest,
                "name",
            ),
            "CommitSchema": (
                lambda r: broker.commit_schema(r.name, r.schema),
                types.CommitSchemaRequest,
                types.Schema,
            ),
            "RollbackSchema": (
                lambda r: broker.rollback_schema(r.name, r.revision_id),
                types.RollbackSchemaRequest,
                types.Schema,
            ),
            "DeleteSchemaRevision": (
                lambda r: broker.delete_schema_revision(r.name, r.revision_id),
                types.DeleteSchemaRevisionRequest,
                types.Schema,
            ),
            "DeleteSchema": (
                lambda r: broker.delete_schema(r.name),
                types.DeleteSchemaRequest,
                empty,
            ),
            "ValidateSchema": (
                lambda r: (
                    broker.validate_schema(r.parent, r.schema) or types.ValidateSchemaResponse()
                ),
                types.ValidateSchemaRequest,
                types.ValidateSchemaResponse,
            ),
            "ValidateMessage": (
                lambda r: broker.validate_message(r) or types.ValidateMessageResponse(),
                types.ValidateMessageRequest,
                types.ValidateMessageResponse,
            ),
        },
    )
