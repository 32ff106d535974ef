"""The fake control plane's server and state: generic over resource-oriented APIs.

Every request is matched to a discovery method (`discovery.py`), its body validated, and
then carried out generically — get / list / create / patch / delete, get/setIamPolicy with
etags, long-running operations (done on their first poll) — except where the API's own
module under `apis/` says otherwise. Tests inject failures (before or after a request is
carried out), operations that fail or never finish, and per-request latency; `state()` and
`load()` copy a deployed fake into a fresh one.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local_stack.control_plane import discovery
from local_stack.control_plane.apis import Answer, Request, iam, rules_of, serviceusage, storage
from local_stack.control_plane.discovery import Invalid, Method
from local_stack.control_plane.errors import GoogleError, error
from local_stack.control_plane.fidelity import Fidelity


class ControlPlane:
    """The server and its state. `with ControlPlane() as fake: fake.url …`."""

    def __init__(
        self, latency_seconds: float = 0.0, port: int = 0, fidelity: Fidelity | None = None
    ) -> None:
        self.latency = latency_seconds
        self.fidelity = fidelity or Fidelity()
        self.lock = threading.RLock()
        self.store: dict[str, dict[str, Any]] = {}  # "<api>:<resource name>" → resource
        self.policies: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        # (method id or "*", status, message, whether the request is carried out first)
        self.faults: list[tuple[str, int, str, bool]] = []
        self.failed_operations: set[str] = set()  # method ids whose operations end in error
        self.stuck_operations: set[str] = set()  # method ids whose operations never finish
        self.requests: list[tuple[str, str]] = []  # (method id, path)
        # What the fidelity rules need to know: when each service was enabled, when each
        # service account was created, which project each bucket belongs to, …
        self.enabled_at: dict[str, float] = {}  # "projects/<p>/services/<name>" → time
        self.born: dict[str, float] = {}  # service account e-mail → time created
        self.projects: dict[str, str] = {}  # bucket key → its project
        self.moments: dict[str, float] = {}  # one-off times: "enabling until", "eventarc"
        self.racing: list[str] = []  # policies another writer changes right after a read
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
            held = {
                "store": self.store,
                "policies": self.policies,
                "operations": self.operations,
                "enabled_at": self.enabled_at,
                "born": self.born,
                "projects": self.projects,
            }
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

    def race_next_policy_write(self, resource: str) -> None:
        """Another writer changes `resource`'s IAM policy just before our next write to it,
        so that write carries a stale etag."""
        self.racing.append(resource)

    def count(self, method_suffix: str) -> int:
        return sum(1 for method_id, _ in self.requests if method_id.endswith(method_suffix))

    def next_id(self) -> int:
        return next(self._ids)

    @staticmethod
    def key(api: str, name: str) -> str:
        return f"{api}:{name}"

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, verb: str, raw_path: str, body: bytes) -> Answer:
        if self.latency:
            time.sleep(self.latency)
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if split.path.startswith("/upload/storage/"):
            try:
                return storage.upload(self, split.path, query, body)
            except GoogleError as refused:
                return refused.answer()
        if split.path.startswith("/upload/"):  # a function source's signed URL
            self.uploads[split.path] = body
            return 200, {}
        prefix, _, rest = split.path.lstrip("/").partition("/")
        api, _, version = prefix.partition(".")
        if not discovery.served(api, version):
            return error(404, f"no API {prefix}")
        document = discovery.document(api, version)
        rest = rest.removeprefix(document["servicePath"])
        method = discovery.route(api, version, verb, rest)
        if method is None:
            return error(404, f"{verb} {rest}: no such method in {api} {version}")
        fault = None
        with self.lock:
            self.requests.append((method.id, rest))
            for index, (target, status, message, after) in enumerate(self.faults):
                if target in ("*", method.id):
                    del self.faults[index]
                    if not after:
                        return error(status, message)
                    fault = error(status, message)
                    break
        payload = json.loads(body) if body else None
        if "request" in method.spec:
            try:
                discovery.validate(document, method.spec["request"], payload or {}, "")
            except Invalid as invalid:
                return error(400, str(invalid), "INVALID_ARGUMENT")
        version_prefix = re.match(r"^(v\d+\w*/)?", rest)
        name = rest.removeprefix(version_prefix.group(0) if version_prefix else "").split(":")[0]
        request = Request(method, rest, name, query, payload or {})
        rules = rules_of(api)
        try:
            with self.lock:
                serviceusage.refuse_if_disabled(self, request)
                rules.check(self, request)
                status, answer = self._carry_out(request)
                answer = rules.respond(self, request, answer)
        except GoogleError as refused:
            return refused.answer()
        except KeyError as missing:
            return error(404, f"Resource not found: {missing}", "NOT_FOUND")
        return fault or (status, answer)

    def _carry_out(self, request: Request) -> Answer:
        method, rules = request.method, rules_of(request.api)
        if method.id.endswith("operations.get"):
            return 200, self.operations[request.name]
        if request.action in ("getIamPolicy", "setIamPolicy"):
            return 200, self._iam(request)
        custom = rules.action(self, request)
        if custom is not None:
            return custom
        if request.action == "get":
            return 200, rules.get(self, request)
        if request.action == "list":
            return 200, self._list(request)
        if request.action in ("create", "insert"):
            return self._create(request)
        if request.action in ("patch", "update"):
            return self._patch(request)
        if request.action == "delete":
            return self._delete(request)
        return error(501, f"the fake does not implement {method.id}", "UNIMPLEMENTED")

    def _list(self, request: Request) -> dict[str, Any]:
        # A "-" segment is a wildcard (`locations/-`: every region), as Google's lists allow.
        # https://google.aip.dev/159
        parent = re.escape(self.key(request.api, request.name) + "/").replace("/\\-/", "/[^/]+/")
        pattern = re.compile(f"^{parent}[^/]+$")
        rules = rules_of(request.api)
        # Small pages, the token a cursor (the last key returned), so that pages stay
        # right while others create and delete. https://google.aip.dev/158
        after = request.query.get("pageToken") or ""
        found = [
            (key, resource)
            for key, resource in sorted(self.store.items())
            if pattern.match(key) and rules.listed(self, request, key) and key > after
        ]
        page: dict[str, Any] = {}
        size = self.fidelity.page_size
        if size and len(found) > size:
            found = found[:size]
            page["nextPageToken"] = found[-1][0]
        if found:
            page[discovery.list_field(request.method)] = [resource for _, resource in found]
        return page

    def _create(self, request: Request) -> Answer:
        method, body, name = request.method, request.body, request.name
        id_param = next((p for p in method.spec.get("parameters", {}) if p.endswith("Id")), None)
        named = rules_of(request.api).name_created(self, request)
        public = ""  # the name the API reports, where it differs from the path
        if named is not None:
            name, public = named
        elif id_param and id_param in request.query:
            name = f"{name}/{request.query[id_param]}"
        elif method.verb == "POST" and body.get("name", "").startswith(name):
            name = body["name"]
        elif method.verb == "POST":
            name = f"{name}/{self.next_id()}"  # the server assigns the id
        key = self.key(request.api, name)
        if key in self.store:
            raise GoogleError(409, f"Resource '{name}' already exists", "ALREADY_EXISTS")
        resource = copy.deepcopy(body) | {"name": public or name}
        rules_of(request.api).created(self, name, resource)
        resource["createTime"] = _now()
        self.store[key] = resource
        return 200, self.operation(method, resource)

    def _patch(self, request: Request) -> Answer:
        body, name = request.body, request.name
        current = self.store[self.key(request.api, name)]
        mask = request.query.get("updateMask") or request.query.get("update_mask")
        if isinstance(body.get("updateMask"), str):
            # Pub/Sub and IAM wrap the resource: {"topic": {...}, "updateMask": "labels"}.
            mask, body = body["updateMask"], body.get(name.split("/")[-2][:-1], body)
        before = copy.deepcopy(current)
        if mask:
            # A field the mask names is replaced whole, or cleared when the body lacks it.
            # https://google.aip.dev/134
            for field in mask.split(","):
                top = field.split(".")[0]
                if top in body:
                    current[top] = body[top]
                else:
                    current.pop(top, None)
        else:
            current.update(body)
        current["updateTime"] = _now()
        rules_of(request.api).patched(self, request, before, current)
        return 200, self.operation(request.method, current)

    def _delete(self, request: Request) -> Answer:
        rules = rules_of(request.api)
        key = self.key(request.api, request.name)
        if key not in self.store:
            raise KeyError(request.name)
        special = rules.delete(self, request, key)
        if special is not None:
            return special
        rules.deleted(self, self.store.pop(key))
        return rules.delete_status, self.operation(request.method, {"name": request.name})

    def operation(
        self, method: Method, resource: dict[str, Any], failure: str = ""
    ) -> dict[str, Any]:
        """LRO methods answer with an operation, done on its first poll (or failed with
        `failure`)."""
        if not method.long_running:
            return resource
        rules = rules_of(method.api)
        name = rules.operation_name(resource, self.next_id())
        failure = failure or rules.failure(resource)
        if method.id in self.failed_operations:
            failure = failure or "build failed"
        if method.id in self.stuck_operations:
            final = {"name": name, "done": False}
        elif failure:
            final = {"name": name, "done": True, "error": {"code": 9, "message": failure}}
        else:
            final = {"name": name, "done": True, "response": resource}
        self.operations[name] = final
        return {"name": name, "done": False}

    def _iam(self, request: Request) -> dict[str, Any]:
        policy = self.policies.setdefault(
            request.name, {"version": 1, "etag": "BwAAAA==", "bindings": []}
        )
        if request.action == "getIamPolicy":
            return copy.deepcopy(iam.as_requested(self, request, policy))
        if request.name in self.racing:  # another writer got there between our read and write
            self.racing.remove(request.name)
            policy["etag"] = f"Bw{self.next_id():06d}=="
        sent = request.body.get("policy", request.body)  # storage sends the policy bare
        if sent.get("etag") and sent["etag"] != policy["etag"]:
            status = iam.stale_etag_status(self, request)
            raise GoogleError(status, "etag mismatch: the policy changed; read it again", "ABORTED")
        iam.check_policy(self, sent)
        policy = dict(sent) | {"etag": f"Bw{self.next_id():06d}=="}
        self.policies[request.name] = policy
        return policy


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


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
        status, payload = self.plane.handle(self.command, self.path, body)
        data = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
