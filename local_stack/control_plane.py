"""A fake of Google's REST control plane, generic over resource-oriented APIs.

One in-process HTTP server answers for every API that google-api-python-client knows,
using the discovery documents shipped inside that package: each request is matched to a
discovery method by HTTP verb and flat path, and **its body is validated against the
method's request schema** — an unknown field, a wrong type, a bad enum value or an
output-only field is a 400, as Google would answer — so a misspelled field fails a test,
not a deploy. Resources are kept in memory: create / get / list / patch / delete,
long-running operations (done on the first poll), get/setIamPolicy with etags, and the
typical errors (404, 409). Tests can inject failures (before or after a request is carried
out), operations that fail or never finish, and per-request latency; `state()` and
`load()` copy a deployed fake into a fresh one.

Clients reach API `<api>` `<version>` at `<url>/<api>.<version>/<servicePath>` (see
`gcp_stack.api.endpoint()`), for example `<url>/storage.v1/storage/v1/`.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
APIS = {
    "storage": "v1",
    "pubsub": "v1",
    "iam": "v1",
    "cloudfunctions": "v2",
    "run": "v2",
    "monitoring": "v3",
    "logging": "v2",
    "serviceusage": "v1",
    "cloudresourcemanager": "v1",
    "eventarc": "v1",
}
DASHBOARDS = ("monitoring", "v1")  # dashboards live in monitoring v1


@functools.cache
def _document(api: str, version: str) -> dict[str, Any]:
    return json.loads((DOCUMENTS / f"{api}.{version}.json").read_text())


@dataclass(frozen=True)
class Method:
    api: str
    version: str
    id: str
    verb: str
    pattern: re.Pattern
    literal: int
    spec: dict[str, Any]

    @property
    def action(self) -> str:
        return self.id.rsplit(".", 1)[-1]


def _methods(resources: dict[str, Any]):
    for resource in resources.values():
        yield from resource.get("methods", {}).values()
        yield from _methods(resource.get("resources", {}))


@functools.cache
def _routes(api: str, version: str) -> list[Method]:
    routes = []
    for spec in _methods(_document(api, version).get("resources", {})):
        template = spec.get("flatPath") or spec["path"]
        regex = re.sub(r"\\\{\\\+[^}]+\\\}", "(.+)", re.escape(template))
        regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", regex)
        literal = len(re.sub(r"\{[^}]+\}", "", template))
        routes.append(
            Method(
                api,
                version,
                spec["id"],
                spec["httpMethod"],
                re.compile(f"^{regex}$"),
                literal,
                spec,
            )
        )
    return sorted(routes, key=lambda m: -m.literal)


class Invalid(ValueError):
    pass


def _output_only(schema: dict[str, Any]) -> bool:
    return schema.get("readOnly") is True or schema.get("description", "").startswith(
        ("Output only", "[Output only]", "Output-only")
    )


def validate(document: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    """Check `value` against a discovery schema; raise Invalid naming the field."""
    if "$ref" in schema:
        schema = document["schemas"][schema["$ref"]]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            raise Invalid(f"{where or 'body'}: expected an object")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            if key in properties:
                if _output_only(properties[key]):
                    raise Invalid(f"{path}: output-only field must not be sent")
                validate(document, properties[key], item, path)
            elif extra is not None:
                validate(document, extra, item, path)
            else:
                raise Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}'")
    elif kind == "array":
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected an array")
        for index, item in enumerate(value):
            validate(document, schema.get("items", {}), item, f"{where}[{index}]")
    elif kind == "string":
        if not isinstance(value, str):
            raise Invalid(f"{where}: expected a string, got {type(value).__name__}")
        if "enum" in schema and value not in schema["enum"]:
            raise Invalid(f"{where}: invalid value {value!r} (one of {', '.join(schema['enum'])})")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Invalid(f"{where}: expected an integer")
        if isinstance(value, str) and not re.fullmatch(r"-?\d+", value):
            raise Invalid(f"{where}: expected an integer")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"{where}: expected a number")
    elif kind == "boolean" and not isinstance(value, bool):
        raise Invalid(f"{where}: expected a boolean")


class ControlPlane:
    """The server and its state. `with ControlPlane() as fake: fake.url …`."""

    def __init__(self, latency_seconds: float = 0.0, port: int = 0) -> None:
        self.latency = latency_seconds
        self.lock = threading.Lock()
        self.store: dict[str, dict[str, Any]] = {}  # resource name → resource
        self.policies: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        # (method id or "*", status, message, whether the request is carried out first)
        self.faults: list[tuple[str, int, str, bool]] = []
        self.failed_operations: set[str] = set()  # method ids whose operations end in error
        self.stuck_operations: set[str] = set()  # method ids whose operations never finish
        self.requests: list[tuple[str, str]] = []  # (method id, path)
        self._ids = itertools.count(1)
        handler = functools.partial(_Handler, self)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )  # shutdown() waits up to one poll interval

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> ControlPlane:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def state(self) -> dict[str, Any]:
        """A copy of everything the fake holds, to `load()` into another one later."""
        with self.lock:
            held = {"store": self.store, "policies": self.policies, "operations": self.operations}
            return copy.deepcopy(held) | {"next_id": next(self._ids)}

    def load(self, state: dict[str, Any]) -> None:
        """Start from a `state()` taken earlier (say, of a deployed stack) instead of empty."""
        with self.lock:
            state = copy.deepcopy(state)
            self._ids = itertools.count(state.pop("next_id"))
            for name, value in state.items():
                getattr(self, name).clear()
                getattr(self, name).update(value)

    def fail_next(
        self,
        method_id: str,
        status: int = 503,
        message: str = "backend error",
        after_applying: bool = False,
    ) -> None:
        """Answer the next call of `method_id` ("*": any) with an error; `after_applying`
        carries the request out first, as when a response is lost on its way back."""
        self.faults.append((method_id, status, message, after_applying))

    def count(self, method_suffix: str) -> int:
        return sum(1 for method_id, _ in self.requests if method_id.endswith(method_suffix))

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, verb: str, raw_path: str, body: bytes) -> tuple[int, Any]:
        if self.latency:
            time.sleep(self.latency)
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if split.path.startswith("/upload/"):
            self.uploads[split.path] = body
            return 200, {}
        prefix, _, rest = split.path.lstrip("/").partition("/")
        api, _, version = prefix.partition(".")
        if api not in APIS and (api, version) != DASHBOARDS:
            return _error(404, f"no API {prefix}")
        document = _document(api, version)
        rest = rest.removeprefix(document["servicePath"])
        method = next(
            (m for m in _routes(api, version) if m.verb == verb and m.pattern.match(rest)), None
        )
        if method is None:
            return _error(404, f"{verb} {rest}: no such method in {api} {version}")
        fault = None
        with self.lock:
            self.requests.append((method.id, rest))
            for index, (target, status, message, after) in enumerate(self.faults):
                if target in ("*", method.id):
                    del self.faults[index]
                    if not after:
                        return _error(status, message)
                    fault = _error(status, message)
                    break
        payload = json.loads(body) if body else None
        if "request" in method.spec:
            try:
                validate(document, method.spec["request"], payload or {}, "")
            except Invalid as error:
                return _error(400, str(error), "INVALID_ARGUMENT")
        try:
            answer = self._apply(method, rest, query, payload or {})
            return fault or answer
        except KeyError as missing:
            return _error(404, f"Resource not found: {missing}", "NOT_FOUND")

    def _apply(
        self, method: Method, path: str, query: dict[str, str], body: dict
    ) -> tuple[int, Any]:
        action, api = method.action, method.api
        version_prefix = re.match(r"^(v\d+\w*/)?", path).group(0)
        name = path.removeprefix(version_prefix)
        name = name.split(":")[0]
        with self.lock:
            if action == "get" and method.id.endswith("operations.get"):
                return 200, self.operations[name]
            if action in ("getIamPolicy", "setIamPolicy"):
                return 200, self._iam(action, name, body)
            if action == "generateUploadUrl":
                upload = f"/upload/{uuid.uuid4().hex}"
                return 200, {
                    "uploadUrl": f"{self.url}{upload}",
                    "storageSource": {"bucket": "gcf-v2-uploads", "object": upload[8:] + ".zip"},
                }
            if action == "enable":
                resource = {
                    "name": name,
                    "state": "ENABLED",
                    "config": {"name": name.rsplit("/", 1)[-1]},
                }
                self.store[self._key(api, name)] = resource
                return 200, self._operation(method, resource)
            if api == "cloudresourcemanager" and action == "get":
                return 200, {"projectId": name.split("/")[-1], "projectNumber": "424242424242"}
            if api == "serviceusage" and action == "get":
                disabled = {"name": name, "state": "DISABLED"}
                return 200, self.store.get(self._key(api, name), disabled)
            if action == "get":
                return 200, self.store[self._key(api, name)]
            if action == "list":
                items = [
                    r
                    for key, r in sorted(self.store.items())
                    if key.startswith(self._key(api, name) + "/")
                    and "/" not in key.removeprefix(self._key(api, name) + "/")
                ]
                return 200, {_list_field(method): items} if items else {}
            if action in ("create", "insert"):
                return self._create(method, name, query, body)
            if action in ("patch", "update"):
                key = self._key(api, name)
                current = self.store[key]
                mask = query.get("updateMask") or query.get("update_mask")
                if isinstance(body.get("updateMask"), str):
                    # Pub/Sub wraps the resource: {"topic": {...}, "updateMask": "labels"}.
                    mask, body = body["updateMask"], body.get(name.split("/")[-2][:-1], body)
                if mask:
                    for field in mask.split(","):
                        top = field.split(".")[0]
                        if top in body:
                            current[top] = body[top]
                        else:
                            current.pop(top, None)
                else:
                    current.update(body)
                current["updateTime"] = _now()
                return 200, self._operation(method, current)
            if action == "delete":
                key = self._key(api, name)
                if key not in self.store:
                    raise KeyError(name)
                if (
                    api == "storage"
                    and "/o/" not in key
                    and any(other.startswith(key + "/o/") for other in self.store)
                ):
                    return _error(
                        409, "The bucket you tried to delete is not empty.", "FAILED_PRECONDITION"
                    )
                if self.store[key].get("state") == "ACTIVE" and "undelete" in _siblings(method):
                    # Soft delete (Workload Identity pools and providers): kept as DELETED,
                    # its name taken until undeleted.
                    self.store[key]["state"] = "DELETED"
                    return 200, self._operation(method, self.store[key])
                deleted = self.store.pop(key)
                trigger = deleted.get("eventTrigger", {}).get("trigger")
                if api == "cloudfunctions" and trigger:
                    # Google deletes the Eventarc trigger it made, and that trigger's
                    # subscription, with the function.
                    made = self.store.pop(self._key("eventarc", trigger), {})
                    subscription = made.get("transport", {}).get("pubsub", {}).get("subscription")
                    self.store.pop(self._key("pubsub", subscription or ""), None)
                return (204 if api == "storage" else 200), self._operation(method, {"name": name})
            if action == "undelete":
                resource = self.store[self._key(api, name)]
                if resource.get("state") != "DELETED":
                    return _error(400, f"{name} is not deleted", "FAILED_PRECONDITION")
                resource["state"] = "ACTIVE"
                return 200, self._operation(method, resource)
        return _error(501, f"the fake does not implement {method.id}", "UNIMPLEMENTED")

    def _key(self, api: str, name: str) -> str:
        return f"{api}:{name}"

    def _create(
        self, method: Method, name: str, query: dict[str, str], body: dict
    ) -> tuple[int, Any]:
        api = method.api
        resource = dict(body)
        id_param = next((p for p in method.spec.get("parameters", {}) if p.endswith("Id")), None)
        public = ""  # the name the API reports, where it differs from the path
        if api == "storage":
            name, public = f"b/{body['name']}", body["name"]
        elif api == "iam" and name.endswith("/serviceAccounts"):
            project = name.split("/")[1]
            email = f"{body['accountId']}@{project}.iam.gserviceaccount.com"
            resource = dict(body.get("serviceAccount", {})) | {
                "email": email,
                "uniqueId": str(next(self._ids)),
            }
            name = f"{name}/{email}"
        elif id_param and id_param in query:
            name = f"{name}/{query[id_param]}"
        elif method.verb == "POST" and "name" in body and body["name"].startswith(name):
            name = body["name"]
        elif method.verb == "POST" and "/" not in body.get("name", "/"):
            name = f"{name}/{body['name']}"  # a log metric: its short name is its id
            public = body["name"]
        elif method.verb == "POST":
            name = f"{name}/{next(self._ids)}"
        key = self._key(api, name)
        if key in self.store:
            return _error(409, f"Resource '{name}' already exists", "ALREADY_EXISTS")
        resource = resource | {"name": public or name}
        if api == "cloudfunctions":
            resource |= {
                "state": "ACTIVE",
                "url": f"https://{name.rsplit('/', 1)[-1]}-fake.a.run.app",
            }
            resource["serviceConfig"] = resource.get("serviceConfig", {}) | {
                "uri": resource["url"],
                "service": name.replace("functions", "services"),
            }
            if "eventTrigger" in resource:  # what Eventarc creates for a Pub/Sub trigger
                short = name.rsplit("/", 1)[-1]
                trigger = f"{name.rsplit('/functions/', 1)[0]}/triggers/{short}-123"
                subscription = f"projects/{name.split('/')[1]}/subscriptions/eventarc-{short}-sub"
                resource["eventTrigger"]["trigger"] = trigger
                self.store[self._key("eventarc", trigger)] = {
                    "name": trigger,
                    "transport": {"pubsub": {"subscription": subscription}},
                }
                self.store[self._key("pubsub", subscription)] = {
                    "name": subscription,
                    "topic": resource["eventTrigger"]["pubsubTopic"],
                }
        if api == "iam" and "workloadIdentityPools" in name:
            resource["state"] = "ACTIVE"
        resource["createTime"] = _now()
        self.store[key] = resource
        return 200, self._operation(method, resource)

    def _operation(self, method: Method, resource: dict[str, Any]) -> dict[str, Any]:
        """LRO methods answer with an operation, done on its first poll."""
        response_ref = method.spec.get("response", {}).get("$ref", "")
        if "Operation" not in response_ref:
            return resource
        number = next(self._ids)
        if method.api == "cloudfunctions":  # operations live where Google puts them
            name = "/".join(resource.get("name", "").split("/")[:4]) + f"/operations/op-{number}"
        elif method.api == "iam":
            name = f"{resource.get('name')}/operations/op-{number}"
        else:
            name = f"operations/op-{number}"
        if method.id in self.stuck_operations:
            final = {"name": name, "done": False}
        elif method.id in self.failed_operations:
            final = {"name": name, "done": True, "error": {"code": 9, "message": "build failed"}}
        else:
            final = {"name": name, "done": True, "response": resource}
        self.operations[name] = final
        return {"name": name, "done": False}

    def _iam(self, action: str, resource: str, body: dict) -> dict[str, Any]:
        policy = self.policies.setdefault(
            resource, {"version": 1, "etag": "BwAAAA==", "bindings": []}
        )
        if action == "setIamPolicy":
            sent = body.get("policy", body)  # storage sends the policy bare
            if sent.get("etag") and sent["etag"] != policy["etag"]:
                raise _Conflict("etag mismatch: the policy changed; read it again")
            policy = dict(sent) | {"etag": f"Bw{next(self._ids):06d}=="}
            self.policies[resource] = policy
        return policy


def _siblings(method: Method) -> set[str]:
    """The actions of the collection `method` belongs to."""
    collection = method.id.rsplit(".", 1)[0]
    return {
        m.action for m in _routes(method.api, method.version) if m.id.startswith(collection + ".")
    }


def _list_field(method: Method) -> str:
    """The array field of a list response (`topics`, `items`, `functions`, …)."""
    schemas = _document(method.api, method.version)["schemas"]
    response = schemas.get(method.spec.get("response", {}).get("$ref", ""), {})
    return next(
        (f for f, spec in response.get("properties", {}).items() if spec.get("type") == "array"),
        "items",
    )


class _Conflict(Exception):
    pass


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _error(status: int, message: str, reason: str = "UNAVAILABLE") -> tuple[int, Any]:
    return status, {"error": {"code": status, "message": message, "status": reason}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes

    def __init__(self, plane: ControlPlane, *args: Any) -> None:
        self.plane = plane
        super().__init__(*args)

    def log_message(self, *_: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, payload = self.plane.handle(self.command, self.path, body)
        except _Conflict as conflict:
            status, payload = _error(409, str(conflict), "ABORTED")
        data = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def main() -> None:
    """`python -m local_stack.control_plane [--port N]`: serve until Ctrl-C."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m local_stack.control_plane")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    args = parser.parse_args()
    with ControlPlane(latency_seconds=args.latency, port=args.port) as plane:
        print(f"fake Google control plane at {plane.url}", flush=True)
        print(f"  GCP_STACK_API_ENDPOINT={plane.url} python -m gcp_stack plan", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        stopped.wait()


if __name__ == "__main__":
    main()
