"""The schema service: schemas and their revisions, and topics that validate what is published.

Sources, beside the comments of google/pubsub_v1/types/schema.py:
- https://cloud.google.com/pubsub/docs/schemas: at most 20 revisions per schema.
- https://cloud.google.com/pubsub/docs/roll-back-schemas: a rollback creates another
  revision with the definition of the one named.
- https://cloud.google.com/pubsub/docs/delete-schema-revision: deleting a schema deletes all
  its revisions.
- https://cloud.google.com/pubsub/docs/publish-topics-schema: a message matches a topic's
  schema if it matches any revision in the allowed range, tried newest first; the service
  adds `googclient_schemaname`, `googclient_schemaencoding` and
  `googclient_schemarevisionid` (an 8-character id) to each message it accepts, and answers
  INVALID_ARGUMENT when no revision matches.
- https://cloud.google.com/pubsub/docs/schemas-valid and SchemaSettings.schema: a topic's
  schema reads `_deleted-schema_` once the schema is deleted.
Where the documents are silent the codes and messages are those Google's emulator answers
(measured, issue #18): ALREADY_EXISTS, NOT_FOUND for an unknown schema or revision,
RESOURCE_EXHAUSTED past 20 revisions, INVALID_ARGUMENT when deleting the last revision,
NOT_FOUND when publishing to a topic whose schema was deleted. Revisions list oldest first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from google.pubsub_v1 import types

from local_stack.pubsub.definitions import Definition, compile_schema
from local_stack.pubsub.errors import RpcError, already_exists, invalid, not_found
from local_stack.pubsub.paging import page
from local_stack.pubsub.rules import PROJECT_RE, SCHEMA_RE
from local_stack.pubsub.state import DELETED_SCHEMA, State

MAX_REVISIONS = 20
ENCODING_NAMES = {types.Encoding.JSON: "JSON", types.Encoding.BINARY: "BINARY"}


def _view(revision: types.Schema, view: types.SchemaView) -> types.Schema:
    """BASIC leaves the definition out (SchemaView)."""
    if view != types.SchemaView.BASIC:
        return revision
    return types.Schema(
        name=revision.name,
        type_=revision.type_,
        revision_id=revision.revision_id,
        revision_create_time=revision.revision_create_time,
    )


def _parent(parent: str) -> str:
    if not PROJECT_RE.match(parent):
        raise invalid(f"Invalid [projects] name: ({parent})")
    return parent


class Schemas(State):
    def _new_revision(self, name: str, proto: types.Schema) -> types.Schema:
        compile_schema(proto)
        revision = types.Schema(
            name=name,
            type_=proto.type_,
            definition=proto.definition,
            revision_id=uuid.uuid4().hex[:8],
            revision_create_time=datetime.now(UTC),
        )
        if "compiled_proto_schema" in proto:
            revision.compiled_proto_schema = proto.compiled_proto_schema
        return revision

    def create_schema(self, parent: str, proto: types.Schema, schema_id: str) -> types.Schema:
        name = f"{_parent(parent)}/schemas/{schema_id}"
        if not SCHEMA_RE.match(name):
            raise invalid(f"Invalid [schemas] name: ({name})")
        revision = self._new_revision(name, proto)
        with self.lock:
            if name in self.schemas:
                raise already_exists("Schema already exists")
            self.schemas[name] = [revision]
        return revision

    def _revision(self, name: str) -> types.Schema:
        """`projects/p/schemas/s` (its newest revision) or `…/s@revision` (lock held)."""
        base, _, revision_id = name.partition("@")
        revisions = self._schema(base)
        if not revision_id:
            return revisions[-1]
        for revision in revisions:
            if revision.revision_id == revision_id:
                return revision
        raise not_found(f"Schema revision not found: {name}")

    def schema(self, name: str, view: types.SchemaView) -> types.Schema:
        with self.lock:
            return _view(self._revision(name), view)  # unset: FULL (GetSchemaRequest.view)

    def list_schemas(
        self, parent: str, view: types.SchemaView, size: int = 0, token: str = ""
    ) -> tuple[list[types.Schema], str]:
        view = view or types.SchemaView.BASIC  # ListSchemasRequest.view
        with self.lock:
            names = sorted(n for n in self.schemas if n.startswith(f"{_parent(parent)}/"))
            return page(names, [_view(self.schemas[n][-1], view) for n in names], size, token)

    def list_schema_revisions(
        self, name: str, view: types.SchemaView, size: int = 0, token: str = ""
    ) -> tuple[list[types.Schema], str]:
        view = view or types.SchemaView.BASIC  # ListSchemaRevisionsRequest.view
        with self.lock:
            revisions = self._schema(name)
            # Creation times order the revisions and are unique, so they serve as page keys.
            keys = [r.revision_create_time.isoformat() for r in revisions]
            return page(keys, [_view(r, view) for r in revisions], size, token)

    def commit_schema(self, name: str, proto: types.Schema) -> types.Schema:
        with self.lock:
            self._schema(name)
        return self._append(name, self._new_revision(name, proto))

    def _append(self, name: str, revision: types.Schema) -> types.Schema:
        with self.lock:
            revisions = self._schema(name)
            if len(revisions) >= MAX_REVISIONS:
                raise RpcError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "Already at maximum number of schema revisions",
                )
            latest = revisions[-1].revision_create_time
            if revision.revision_create_time <= latest:  # the clock did not move on
                revision.revision_create_time = latest + timedelta(microseconds=1)
            revisions.append(revision)
            return revision

    def rollback_schema(self, name: str, revision_id: str) -> types.Schema:
        if not revision_id:
            raise invalid("revision_id is required")
        with self.lock:
            source = self._revision(f"{name}@{revision_id}")
        return self._append(name, self._new_revision(name, source))

    def delete_schema_revision(self, name: str, revision_id: str = "") -> types.Schema:
        if "@" not in name and revision_id:  # the deprecated field
            name = f"{name}@{revision_id}"
        if "@" not in name:
            raise invalid(f"The name must name a revision (schema@revision): {name}")
        with self.lock:
            revision = self._revision(name)
            revisions = self.schemas[revision.name]
            if len(revisions) == 1:
                raise invalid("Cannot delete last revision. Please use DeleteSchema.")
            revisions.remove(revision)
            return revision

    def delete_schema(self, name: str) -> None:
        with self.lock:
            self._schema(name)
            del self.schemas[name]
            for topic in self.topics.values():
                if topic.schema_settings.schema == name:
                    topic.schema_settings.schema = DELETED_SCHEMA

    def validate_schema(self, parent: str, proto: types.Schema) -> None:
        _parent(parent)
        compile_schema(proto)

    def validate_message(self, request: types.ValidateMessageRequest) -> None:
        _parent(request.parent)
        if request.encoding not in ENCODING_NAMES:
            raise invalid("No encoding provided.")
        if "schema" in request:
            definition = compile_schema(request.schema)
        else:
            with self.lock:
                definition = compile_schema(self._revision(request.name))
        if not definition.accepts(request.message, request.encoding):
            raise invalid("Invalid data in message: it does not match the schema")

    # -- topics with a schema ------------------------------------------------------------------

    def _check_schema_settings(self, topic: types.Topic) -> None:
        """A topic's schema exists, with its encoding and revision range (lock held)."""
        if "schema_settings" not in topic:
            return
        settings = topic.schema_settings
        if settings.schema == DELETED_SCHEMA:
            return
        if settings.schema not in self.schemas:
            if not SCHEMA_RE.match(settings.schema):
                raise invalid(f"Invalid [schemas] name: ({settings.schema})")
            raise not_found("Schema could not be found")
        if settings.encoding not in ENCODING_NAMES:
            raise invalid("Invalid schema encoding provided")
        revisions = [r.revision_id for r in self.schemas[settings.schema]]
        for bound, label in (
            (settings.first_revision_id, "First"),
            (settings.last_revision_id, "Last"),
        ):
            if bound and bound not in revisions:
                raise not_found(f"{label} revision could not be found")
        first, last = settings.first_revision_id, settings.last_revision_id
        if first and last and revisions.index(first) > revisions.index(last):
            raise invalid("First revision creation time is after last revision creation time")

    def _allowed(self, settings: types.SchemaSettings) -> list[tuple[str, Definition]]:
        """(revision id, definition) the topic accepts, newest first (lock held)."""
        revisions = self.schemas[settings.schema]
        ids = [r.revision_id for r in revisions]
        start = ids.index(settings.first_revision_id) if settings.first_revision_id in ids else 0
        end = ids.index(settings.last_revision_id) if settings.last_revision_id in ids else -1
        chosen = revisions[start:] if end == -1 else revisions[start : end + 1]
        return [(r.revision_id, compile_schema(r)) for r in reversed(chosen)]

    def _conform(self, topic: types.Topic, messages: list[types.PubsubMessage]) -> None:
        """Adds the schema attributes to each message, or rejects the publish (lock held)."""
        settings = topic.schema_settings
        if not settings.schema:
            return
        if settings.schema == DELETED_SCHEMA:
            raise not_found("Schema associated with topic deleted.")
        allowed = self._allowed(settings)
        for message in messages:
            revision_id = next(
                (rid for rid, d in allowed if d.accepts(message.data, settings.encoding)), None
            )
            if revision_id is None:
                raise invalid("Invalid data in message: Message failed schema validation.")
            message.attributes["googclient_schemaname"] = settings.schema
            message.attributes["googclient_schemaencoding"] = ENCODING_NAMES[settings.encoding]
            message.attributes["googclient_schemarevisionid"] = revision_id
