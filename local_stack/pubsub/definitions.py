"""Schema definitions, Avro and Protocol Buffer, checked for real, and the messages they accept.

Sources: https://cloud.google.com/pubsub/docs/schemas (Avro 1.11; proto2 and proto3; a
definition has exactly one top-level type and no imports; at most 300 KB) and the Encoding
comment in google/pubsub_v1/types/schema.py (JSON, or the schema type's binary encoding:
Avro's binary encoding, protobuf's wire format). An Avro message in JSON is Avro's JSON
encoding (a union's value wrapped as `{"type": value}`); a protobuf one is proto3's JSON
mapping.

Avro is parsed and decoded with fastavro, protobuf definitions are compiled with the protoc
inside grpcio-tools; both are imported on first use, so the emulator starts without them.
Like Google's emulator (measured, issue #18), an Avro JSON message may carry fields the
record does not declare, and bytes after a complete binary datum are ignored.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
import threading
from pathlib import Path
from typing import Any

from google.pubsub_v1 import types

from local_stack.pubsub.errors import invalid

MAX_DEFINITION_BYTES = 300 * 1000  # schemas#quotas: "no more than 300 KB"
_PROTOC = threading.Lock()  # protoc's in-process compiler is not documented as thread-safe


class Definition:
    """A compiled definition: `accepts(data, encoding)` says whether a message conforms."""

    def accepts(self, data: bytes, encoding: types.Encoding) -> bool:
        raise NotImplementedError


class Avro(Definition):
    def __init__(self, text: str) -> None:
        import fastavro  # lazily: the local stack never needs it

        try:
            self.schema = fastavro.parse_schema(json.loads(text))
        except Exception as error:  # noqa: BLE001 - fastavro raises many types for bad input
            raise invalid(f"Invalid Avro schema definition: {error}") from None

    def accepts(self, data: bytes, encoding: types.Encoding) -> bool:
        import fastavro
        from fastavro.validation import validate

        try:
            if encoding == types.Encoding.JSON:
                # One JSON document; fastavro's reader resolves unions and defaults but does
                # not check types, which validate() then does.
                text = json.dumps(json.loads(data))
                datum = next(iter(fastavro.json_reader(io.StringIO(text), self.schema)))
                return validate(datum, self.schema, raise_errors=False)
            fastavro.schemaless_reader(io.BytesIO(data), self.schema)
            return True
        except Exception:  # noqa: BLE001 - malformed data fails in many ways (EOF, type errors)
            return False


class Protobuf(Definition):
    def __init__(self, text: str = "", compiled: types.CompiledProtoSchema | None = None) -> None:
        from google.protobuf import descriptor_pool, message_factory

        if compiled is not None:
            files = _descriptor_set(compiled.compiled_bytes)
            root = compiled.root_message
        else:
            files = _protoc(text)
            # An import fails to compile: nothing but the definition is on the include path.
            (only,) = files.file
            if len(only.message_type) != 1 or only.enum_type or only.service:
                raise invalid(
                    "Invalid protocol buffer schema: it must define exactly one top-level type, "
                    "a message"
                )
            package = f"{only.package}." if only.package else ""
            root = package + only.message_type[0].name
        pool = descriptor_pool.DescriptorPool()
        try:
            for file in files.file:
                pool.Add(file)
            descriptor = pool.FindMessageTypeByName(root)
        except (KeyError, TypeError, ValueError) as error:
            raise invalid(f"Invalid protocol buffer schema: {error}") from None
        self.message_class = message_factory.GetMessageClass(descriptor)

    def accepts(self, data: bytes, encoding: types.Encoding) -> bool:
        from google.protobuf import json_format, message

        try:
            if encoding == types.Encoding.JSON:
                parsed = json_format.Parse(data.decode(), self.message_class())
            else:
                parsed = self.message_class.FromString(data)
        except (json_format.ParseError, message.DecodeError, UnicodeDecodeError, ValueError):
            return False
        return parsed.IsInitialized()  # proto2's required fields


def _descriptor_set(data: bytes) -> Any:
    from google.protobuf import descriptor_pb2, message

    try:
        return descriptor_pb2.FileDescriptorSet.FromString(data)
    except message.DecodeError:
        raise invalid("Invalid compiled_proto_schema: not a FileDescriptorSet") from None


def _protoc(text: str) -> Any:
    """The FileDescriptorSet of one .proto text, or INVALID_ARGUMENT with protoc's errors."""
    from grpc_tools import _protoc_compiler, protoc  # lazily: the local stack never needs it

    with tempfile.TemporaryDirectory(prefix="pubsub-schema-") as directory, _PROTOC:
        source = Path(directory) / "schema.proto"
        source.write_text(text)
        try:  # get_protos reports errors as values; main() would print them on fd 2
            _protoc_compiler.get_protos(b"schema.proto", [directory.encode()])
        except _protoc_compiler.ProtocErrors as errors:
            raise invalid(f"Invalid protocol buffer schema: {errors}") from None
        out = Path(directory) / "schema.desc"
        if protoc.main(["protoc", f"-I{directory}", f"--descriptor_set_out={out}", "schema.proto"]):
            raise invalid("Invalid protocol buffer schema")
        return _descriptor_set(out.read_bytes())


@functools.lru_cache(maxsize=256)
def _compile(kind: int, definition: str, compiled: bytes, root: str) -> Definition:
    if kind == types.Schema.Type.AVRO:
        return Avro(definition)
    if kind == types.Schema.Type.PROTOCOL_BUFFER:
        if compiled:
            config = types.CompiledProtoSchema(compiled_bytes=compiled, root_message=root)
            return Protobuf(compiled=config)
        return Protobuf(definition)
    raise invalid("Invalid schema type")


def compile_schema(schema: types.Schema) -> Definition:
    """The schema's definition, compiled (once per distinct definition), or INVALID_ARGUMENT."""
    if len(schema.definition.encode()) > MAX_DEFINITION_BYTES:
        raise invalid(f"The schema definition is larger than {MAX_DEFINITION_BYTES} bytes")
    compiled = schema.compiled_proto_schema if "compiled_proto_schema" in schema else None
    if compiled is not None and schema.type_ != types.Schema.Type.PROTOCOL_BUFFER:
        raise invalid("compiled_proto_schema needs type PROTOCOL_BUFFER")
    return _compile(
        int(schema.type_),
        schema.definition,
        compiled.compiled_bytes if compiled is not None else b"",
        compiled.root_message if compiled is not None else "",
    )
