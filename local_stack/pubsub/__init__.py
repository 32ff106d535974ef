"""A Pub/Sub emulator that the real google-cloud-pubsub clients use via PUBSUB_EMULATOR_HOST.

gRPC, in one process: topics, subscriptions (ack deadline, retry policy, dead-letter policy,
push config, message ordering, filters, exactly-once delivery, retention), paged lists,
UpdateTopic, snapshots and Seek, DetachSubscription, Publish, Pull, StreamingPull,
Acknowledge, ModifyAckDeadline, redelivery after the ack deadline, push delivery in
Pub/Sub's push JSON format with exponential backoff between the retry policy's bounds,
dead-lettering after `max_delivery_attempts`, and the schema service (Avro and Protocol
Buffer schemas with revisions; topics that validate what is published).

google-cloud-pubsub ships no servicer classes, so the services are generic gRPC handlers
over the proto-plus types. Errors carry the status codes Google's service uses
(NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT), and anything unexpected is INTERNAL, never
UNKNOWN: the client retries UNKNOWN for a minute.

    python -m local_stack.pubsub --port 8085

The modules, one concept each: `state` (what is stored, and the lookups), `errors`, `rules`
(what the service accepts, with its defaults and limits), `filters` (the filter language),
`admin` (topics and subscriptions), `paging`, `delivery` (publish, pull, ack, redelivery,
ordering, exactly-once, dead-lettering), `snapshots` (snapshots and Seek), `schemas` (the
schema service, and publishes checked against a topic's schema), `definitions` (Avro and
protobuf definitions and the messages they accept), `push` (push
delivery), `streaming` (StreamingPull), `service` (the gRPC method tables), `server` (the
emulator in-process).
"""

from local_stack.pubsub.server import PubSubEmulator

__all__ = ["PubSubEmulator"]
