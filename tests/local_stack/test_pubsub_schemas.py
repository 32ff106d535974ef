"""Conformance of our Pub/Sub emulator's schema service, checked with the real clients.

As in test_pubsub_conformance.py, every case runs against our emulator and against Google's
where gcloud has it. Google's emulator answers UNIMPLEMENTED ("Protocol buffer support not
implemented in emulator", measured with 0.8.20) for every Protocol Buffer schema, so those
cases run against ours only; the real service supports proto2 and proto3
(https://cloud.google.com/pubsub/docs/schemas).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from unittest import mock

import pytest
from google.api_core import exceptions
from google.protobuf import descriptor_pb2
from google.pubsub_v1 import SchemaServiceClient, types

from tests.local_stack.test_pubsub_conformance import PROJECT, pull, subscribe, unique

pytestmark = pytest.mark.timeout(60)

PARENT = f"projects/{PROJECT}"
STATE_AVRO = json.dumps(
    {
        "type": "record",
        "name": "State",
        "fields": [{"name": "name", "type": "string"}, {"name": "post_abbr", "type": "string"}],
    }
)
NAME_ONLY_AVRO = json.dumps(
    {"type": "record", "name": "State", "fields": [{"name": "name", "type": "string"}]}
)
STATE_PROTO = (
    'syntax = "proto3";\nmessage State {\n  string name = 1;\n  string post_abbr = 2;\n}\n'
)
ALASKA_JSON = b'{"name": "Alaska", "post_abbr": "AK"}'
ALASKA_AVRO_BINARY = b"\x0cAlaska\x04AK"  # zigzag lengths, then the bytes, field by field
ALASKA_PROTO_BINARY = b"\x0a\x06Alaska\x12\x02AK"  # tag (field 1, length-delimited), length, bytes
AVRO, PROTOCOL_BUFFER = types.Schema.Type.AVRO, types.Schema.Type.PROTOCOL_BUFFER
JSON, BINARY = types.Encoding.JSON, types.Encoding.BINARY


@pytest.fixture(scope="session")
def schemas(emulator):
    with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": emulator.host}):
        client = SchemaServiceClient()
    try:
        yield client
    finally:
        client.transport.close()


def create(schemas, definition: str = STATE_AVRO, kind=AVRO) -> types.Schema:
    return schemas.create_schema(
        parent=PARENT,
        schema=types.Schema(type_=kind, definition=definition),
        schema_id=f"s-{uuid.uuid4().hex[:10]}",
    )


def commit(schemas, name: str, definition: str, kind=AVRO) -> types.Schema:
    return schemas.commit_schema(name=name, schema=types.Schema(type_=kind, definition=definition))


def schema_topic(clients, schema: str, encoding=JSON, **revisions) -> str:
    publisher, _ = clients
    settings = {"schema": schema, "encoding": encoding, **revisions}
    return publisher.create_topic(
        request={"name": unique("topics"), "schema_settings": settings}
    ).name


def publish(clients, topic: str, data: bytes) -> str:
    publisher, _ = clients
    return publisher.publish(topic, data).result(timeout=20)


# -- schemas and revisions --------------------------------------------------------------------


def test_schema_lifecycle(schemas):
    created = create(schemas)
    assert created.name.startswith(f"{PARENT}/schemas/s-")
    assert re.fullmatch(r"[0-9a-f]{8}", created.revision_id)
    assert created.definition == STATE_AVRO
    full = schemas.get_schema(request={"name": created.name})  # unset view: all fields
    assert (full.type_, full.definition, full.revision_id) == (
        AVRO,
        STATE_AVRO,
        created.revision_id,
    )
    basic = schemas.get_schema(request={"name": created.name, "view": types.SchemaView.BASIC})
    assert (basic.name, basic.type_, basic.definition) == (created.name, AVRO, "")
    listed = schemas.list_schemas(request={"parent": PARENT, "view": types.SchemaView.FULL})
    assert created.name in [s.name for s in listed]
    schemas.delete_schema(name=created.name)
    with pytest.raises(exceptions.NotFound):
        schemas.get_schema(request={"name": created.name})


def test_creating_an_existing_schema_is_already_exists(schemas):
    created = create(schemas)
    with pytest.raises(exceptions.AlreadyExists):
        schemas.create_schema(
            parent=PARENT,
            schema=types.Schema(type_=AVRO, definition=STATE_AVRO),
            schema_id=created.name.rsplit("/", 1)[1],
        )


@pytest.mark.parametrize("schema_id", ["", "1starts-with-a-digit", "googprefix", "ab", "a" * 256])
def test_schema_ids_follow_the_resource_name_rules(schemas, schema_id):
    with pytest.raises(exceptions.InvalidArgument):
        schemas.create_schema(
            parent=PARENT,
            schema=types.Schema(type_=AVRO, definition=STATE_AVRO),
            schema_id=schema_id,
        )


@pytest.mark.parametrize(
    "definition",
    [
        "",
        "{",
        '{"type": "record"}',  # a record needs a name and fields
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}',
        '"strin"',
    ],
)
def test_invalid_avro_definitions_are_invalid_argument(schemas, definition):
    schema = types.Schema(type_=AVRO, definition=definition)
    with pytest.raises(exceptions.InvalidArgument):
        schemas.create_schema(parent=PARENT, schema=schema, schema_id=f"s-{uuid.uuid4().hex}")
    with pytest.raises(exceptions.InvalidArgument):
        schemas.validate_schema(parent=PARENT, schema=schema)


def test_a_valid_definition_validates(schemas):
    schemas.validate_schema(parent=PARENT, schema=types.Schema(type_=AVRO, definition=STATE_AVRO))


def test_a_schema_needs_a_type(schemas):
    with pytest.raises(exceptions.InvalidArgument):
        schemas.create_schema(
            parent=PARENT,
            schema=types.Schema(definition=STATE_AVRO),
            schema_id=f"s-{uuid.uuid4().hex[:10]}",
        )


def test_commits_add_revisions_listed_oldest_first(schemas):
    first = create(schemas)
    second = commit(schemas, first.name, NAME_ONLY_AVRO)
    assert second.name == first.name and second.revision_id != first.revision_id
    assert second.revision_create_time > first.revision_create_time
    revisions = list(
        schemas.list_schema_revisions(request={"name": first.name, "view": types.SchemaView.FULL})
    )
    assert [(r.revision_id, r.definition) for r in revisions] == [
        (first.revision_id, STATE_AVRO),
        (second.revision_id, NAME_ONLY_AVRO),
    ]
    assert schemas.get_schema(request={"name": first.name}).revision_id == second.revision_id
    named = schemas.get_schema(request={"name": f"{first.name}@{first.revision_id}"})
    assert named.definition == STATE_AVRO


def test_rollback_commits_a_copy_of_an_earlier_revision(schemas):
    first = create(schemas)
    commit(schemas, first.name, NAME_ONLY_AVRO)
    rolled = schemas.rollback_schema(name=first.name, revision_id=first.revision_id)
    assert rolled.revision_id != first.revision_id
    assert rolled.definition == STATE_AVRO
    assert len(list(schemas.list_schema_revisions(request={"name": first.name}))) == 3
    with pytest.raises(exceptions.NotFound):
        schemas.rollback_schema(name=first.name, revision_id="deadbeef")


def test_deleting_a_revision_keeps_the_others_but_never_the_last(schemas):
    first = create(schemas)
    second = commit(schemas, first.name, NAME_ONLY_AVRO)
    with pytest.raises(exceptions.NotFound):
        schemas.delete_schema_revision(name=f"{first.name}@deadbeef")
    deleted = schemas.delete_schema_revision(name=f"{first.name}@{first.revision_id}")
    assert deleted.revision_id == first.revision_id
    remaining = schemas.list_schema_revisions(request={"name": first.name})
    assert [r.revision_id for r in remaining] == [second.revision_id]
    with pytest.raises(exceptions.InvalidArgument):
        schemas.delete_schema_revision(name=f"{first.name}@{second.revision_id}")


def test_a_schema_has_at_most_20_revisions(schemas):
    name = create(schemas).name
    for _ in range(19):
        commit(schemas, name, NAME_ONLY_AVRO)
    with pytest.raises(exceptions.ResourceExhausted):
        commit(schemas, name, NAME_ONLY_AVRO)


def test_schema_lists_page(schemas):
    name = create(schemas).name
    create(schemas)
    commit(schemas, name, NAME_ONLY_AVRO)
    first = next(iter(schemas.list_schemas(request={"parent": PARENT, "page_size": 1}).pages))
    assert len(first.schemas) == 1 and first.next_page_token
    pages = list(schemas.list_schema_revisions(request={"name": name, "page_size": 1}).pages)
    assert [len(p.schemas) for p in pages] == [1, 1]


# -- validating messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "encoding", "valid"),
    [
        (ALASKA_JSON, JSON, True),
        (b'{"name": "Alaska"}', JSON, False),  # post_abbr is missing
        (b'{"name": 1, "post_abbr": "AK"}', JSON, False),
        (b"Alaska", JSON, False),
        (ALASKA_AVRO_BINARY, BINARY, True),
        (ALASKA_AVRO_BINARY[:-1], BINARY, False),
    ],
)
def test_validate_message_against_a_named_schema(schemas, message, encoding, valid):
    request = {"parent": PARENT, "name": create(schemas).name, "message": message}
    request["encoding"] = encoding
    if valid:
        schemas.validate_message(request=request)
    else:
        with pytest.raises(exceptions.InvalidArgument):
            schemas.validate_message(request=request)


def test_validate_message_against_an_ad_hoc_schema_needs_an_encoding(schemas):
    request = {
        "parent": PARENT,
        "schema": {"type_": AVRO, "definition": NAME_ONLY_AVRO},
        "message": b'{"name": "Alaska"}',
    }
    schemas.validate_message(request=request | {"encoding": JSON})
    with pytest.raises(exceptions.InvalidArgument):
        schemas.validate_message(request=request)


# -- topics with a schema ---------------------------------------------------------------------


def test_a_topics_schema_must_exist(clients, schemas):
    with pytest.raises(exceptions.NotFound):
        schema_topic(clients, f"{PARENT}/schemas/never-created")


def test_a_topics_schema_needs_an_encoding(clients, schemas):
    with pytest.raises(exceptions.InvalidArgument):
        schema_topic(clients, create(schemas).name, encoding=types.Encoding.ENCODING_UNSPECIFIED)


def test_a_topics_revision_range_must_exist_and_be_ordered(clients, schemas):
    first = create(schemas)
    second = commit(schemas, first.name, NAME_ONLY_AVRO)
    with pytest.raises(exceptions.NotFound):
        schema_topic(clients, first.name, first_revision_id="deadbeef")
    with pytest.raises(exceptions.InvalidArgument):
        schema_topic(
            clients,
            first.name,
            first_revision_id=second.revision_id,
            last_revision_id=first.revision_id,
        )


def test_publish_rejects_a_message_the_schema_does_not_accept(clients, schemas):
    topic = schema_topic(clients, create(schemas).name)
    with pytest.raises(exceptions.InvalidArgument):
        publish(clients, topic, b'{"name": "Alaska"}')
    with pytest.raises(exceptions.InvalidArgument):
        publish(clients, topic, b"not json")


def test_published_messages_carry_the_schema_attributes(clients, schemas):
    _, subscriber = clients
    schema = create(schemas)
    topic = schema_topic(clients, schema.name)
    subscription = subscribe(subscriber, topic)
    publish(clients, topic, ALASKA_JSON)
    (received,) = pull(subscriber, subscription, 1)
    assert received.message.data == ALASKA_JSON
    assert dict(received.message.attributes) == {
        "googclient_schemaname": schema.name,
        "googclient_schemaencoding": "JSON",
        "googclient_schemarevisionid": schema.revision_id,
    }


def test_publish_matches_the_newest_revision_in_the_range_that_accepts(clients, schemas):
    _, subscriber = clients
    first = create(schemas)
    second = commit(schemas, first.name, NAME_ONLY_AVRO)
    anywhere = schema_topic(clients, first.name)
    only_first = schema_topic(
        clients, first.name, first_revision_id=first.revision_id, last_revision_id=first.revision_id
    )
    subscription = subscribe(subscriber, anywhere)
    publish(clients, anywhere, b'{"name": "Alaska"}')  # only the second revision accepts it
    publish(clients, anywhere, ALASKA_JSON)  # both do (a record may carry more fields)
    with pytest.raises(exceptions.InvalidArgument):
        publish(clients, only_first, b'{"name": "Alaska"}')
    publish(clients, only_first, ALASKA_JSON)
    received = pull(subscriber, subscription, 2)
    tagged = [m.message.attributes["googclient_schemarevisionid"] for m in received]
    assert tagged == [second.revision_id, second.revision_id]


def test_binary_encoded_avro_messages_are_validated(clients, schemas):
    _, subscriber = clients
    topic = schema_topic(clients, create(schemas).name, encoding=BINARY)
    subscription = subscribe(subscriber, topic)
    publish(clients, topic, ALASKA_AVRO_BINARY)
    with pytest.raises(exceptions.InvalidArgument):
        publish(clients, topic, ALASKA_AVRO_BINARY[:-1])
    (received,) = pull(subscriber, subscription, 1)
    assert received.message.attributes["googclient_schemaencoding"] == "BINARY"


def test_deleting_a_schema_marks_its_topics_and_stops_their_publishes(clients, schemas):
    publisher, _ = clients
    schema = create(schemas)
    topic = schema_topic(clients, schema.name)
    schemas.delete_schema(name=schema.name)
    assert publisher.get_topic(topic=topic).schema_settings.schema == "_deleted-schema_"
    with pytest.raises(exceptions.NotFound):
        publish(clients, topic, ALASKA_JSON)


def test_update_topic_checks_the_new_schema(clients, schemas):
    publisher, _ = clients
    topic = schema_topic(clients, create(schemas).name)
    patch = {
        "name": topic,
        "schema_settings": {"schema": f"{PARENT}/schemas/gone", "encoding": JSON},
    }
    with pytest.raises(exceptions.NotFound):
        publisher.update_topic(
            request={"topic": patch, "update_mask": {"paths": ["schema_settings"]}}
        )


def test_update_topic_moves_the_revision_range_by_nested_mask_paths(clients, schemas):
    """Google's sample update_topic_schema sends exactly this mask."""
    publisher, _ = clients
    first = create(schemas)
    second = commit(schemas, first.name, NAME_ONLY_AVRO)
    topic = schema_topic(clients, first.name)
    patch = {
        "name": topic,
        "schema_settings": {
            "first_revision_id": second.revision_id,
            "last_revision_id": second.revision_id,
        },
    }
    mask = "schemaSettings.firstRevisionId,schemaSettings.lastRevisionId"
    updated = publisher.update_topic(request={"topic": patch, "update_mask": mask})
    settings = updated.schema_settings
    assert (settings.schema, settings.encoding) == (first.name, JSON)
    assert (settings.first_revision_id, settings.last_revision_id) == (
        second.revision_id,
        second.revision_id,
    )


def test_update_topic_with_empty_schema_settings_removes_the_schema(clients, schemas):
    publisher, _ = clients
    topic = schema_topic(clients, create(schemas).name)
    mask = {"paths": ["schema_settings"]}
    updated = publisher.update_topic(request={"topic": {"name": topic}, "update_mask": mask})
    assert not updated.schema_settings.schema
    assert publish(clients, topic, b"no longer checked")


# -- Protocol Buffer schemas (ours only; see the module's docstring) --------------------------


@pytest.mark.parametrize(
    "definition",
    [
        'syntax = "proto3";\nmessage State { strin name = 1; }\n',  # an unknown type
        'syntax = "proto3";\nmessage A { string a = 1; }\nmessage B { string b = 1; }\n',
        'syntax = "proto3";\nimport "google/protobuf/empty.proto";\nmessage A { string a = 1; }\n',
        'syntax = "proto3";\nenum Colour { RED = 0; }\n',  # the one top-level type is no message
    ],
)
def test_invalid_protobuf_definitions_are_invalid_argument(schemas, emulator, definition):
    emulator.only_ours("Google's emulator does not support Protocol Buffer schemas")
    with pytest.raises(exceptions.InvalidArgument):
        create(schemas, definition, PROTOCOL_BUFFER)


@pytest.mark.parametrize(
    ("message", "encoding", "valid"),
    [
        (b'{"name": "Alaska", "postAbbr": "AK"}', JSON, True),  # proto3's JSON mapping
        (b'{"name": "Alaska", "unknown": 1}', JSON, False),
        (b'{"name": 5}', JSON, False),
        (ALASKA_PROTO_BINARY, BINARY, True),
        (b"\x0a\x10Alaska", BINARY, False),  # the length runs past the end
    ],
)
def test_protobuf_topics_validate_json_and_binary_messages(
    clients, schemas, emulator, message, encoding, valid
):
    emulator.only_ours("Google's emulator does not support Protocol Buffer schemas")
    topic = schema_topic(clients, create(schemas, STATE_PROTO, PROTOCOL_BUFFER).name, encoding)
    if valid:
        assert publish(clients, topic, message)
    else:
        with pytest.raises(exceptions.InvalidArgument):
            publish(clients, topic, message)


def test_proto2_required_fields_are_enforced(schemas, emulator):
    emulator.only_ours("Google's emulator does not support Protocol Buffer schemas")
    definition = 'syntax = "proto2";\nmessage State { required string name = 1; }\n'
    request = {"parent": PARENT, "name": create(schemas, definition, PROTOCOL_BUFFER).name}
    schemas.validate_message(request=request | {"message": b"\x0a\x01A", "encoding": BINARY})
    with pytest.raises(exceptions.InvalidArgument):
        schemas.validate_message(request=request | {"message": b"", "encoding": BINARY})


def test_a_compiled_descriptor_set_serves_as_a_protobuf_definition(schemas, emulator):
    emulator.only_ours("Google's emulator does not support Protocol Buffer schemas")
    field = descriptor_pb2.FieldDescriptorProto
    state = descriptor_pb2.DescriptorProto(
        name="State",
        field=[field(name="name", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)],
    )
    files = descriptor_pb2.FileDescriptorSet(
        file=[descriptor_pb2.FileDescriptorProto(name="state.proto", message_type=[state])]
    )
    compiled = {"compiled_bytes": files.SerializeToString(), "root_message": "State"}
    schema = {"type_": PROTOCOL_BUFFER, "compiled_proto_schema": compiled}
    request = {"parent": PARENT, "schema": schema, "encoding": BINARY}
    schemas.validate_message(request=request | {"message": b"\x0a\x06Alaska"})
    with pytest.raises(exceptions.InvalidArgument):
        schemas.validate_message(request=request | {"message": b"\x0a\x10Alaska"})
    unknown_root = schema | {"compiled_proto_schema": compiled | {"root_message": "Nope"}}
    with pytest.raises(exceptions.InvalidArgument):
        schemas.validate_schema(parent=PARENT, schema=unknown_root)
