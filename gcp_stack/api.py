"""Calling Google's APIs: discovery clients built offline, retries, long-running operations.

A failed call is repeated only when its error belongs to one of the classes in
`gcp_stack.retries` (modelled on Terraform's retry predicates), with exponential backoff
under that class's deadline; anything else, or a class that outlasts its deadline, raises
ApiCallFailed naming the resource, the operation and (when it gave up) the class.
`GCP_STACK_API_ENDPOINT` (or `--api-endpoint`) points every client at one server, such as
the fake control plane in local_stack/control_plane/: API <api> <version> is reached at
`<endpoint>/<api>.<version>/<servicePath>` (for example `…/storage.v1/storage/v1/`), and no
credentials are looked up.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httplib2
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from gcp_stack import retries
from gcp_stack.errors import ApiCallFailed, NoCredentials, OperationFailed, OperationTimedOut


@functools.cache
def _discovery_document(api: str, version: str) -> dict:
    """The discovery document shipped inside google-api-python-client (offline)."""
    from googleapiclient.discovery_cache import get_static_doc

    return json.loads(get_static_doc(api, version))


def endpoint(base_url: str, api: str, version: str) -> str:
    """The api_endpoint of `api` on a server that serves every API under one URL (the fake
    control plane): `<base_url>/<api>.<version>/<servicePath>`."""
    return f"{base_url}/{api}.{version}/{_discovery_document(api, version)['servicePath']}"


class _Collections:
    """A discovery client whose collections (`projects()`, `topics()`, …) are built once.

    googleapiclient builds every method of a collection, docstrings included, each time the
    collection is asked for; that cost more than a request to a local server.
    """

    def __init__(self, target: Any) -> None:
        self._target = target
        self._built: dict[str, _Collections] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if args or kwargs:
                return attribute(*args, **kwargs)
            if name not in self._built:
                result = attribute()
                if not isinstance(result, discovery.Resource):
                    return result  # a request method that takes no parameters
                self._built[name] = _Collections(result)
            return self._built[name]

        return call


class Api:
    """Discovery clients shared by every thread, one connection per thread, call helpers."""

    def __init__(
        self,
        credentials: Any = None,
        endpoint: str | None = None,
        deadline: float = 120.0,
        operation_deadline: float = 900.0,
        poll_initial: float = 1.0,
        propagation_deadline: float = 600.0,
    ) -> None:
        self.endpoint = endpoint
        self.deadline = deadline  # for transient errors (overload, transport)
        self.propagation_deadline = propagation_deadline  # for Google's eventual consistency
        self.enabled: set[str] = set()  # services seen enabled in this run
        self.operation_deadline = operation_deadline
        self.poll_initial = poll_initial
        if credentials is None:
            credentials = self._default_credentials() if endpoint is None else None
        if credentials is None:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        self.credentials = credentials
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], _Collections] = {}

    @staticmethod
    def _default_credentials() -> Any:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        except DefaultCredentialsError:
            raise NoCredentials(
                "no Google credentials: run `gcloud auth application-default login` "
                "(or set GOOGLE_APPLICATION_CREDENTIALS)"
            ) from None
        return credentials

    def client(self, api: str, version: str) -> Any:
        """One discovery client per API for every thread (requests carry their own http)."""
        with self._lock:
            if (api, version) not in self._clients:
                options, document = None, _discovery_document(api, version)
                if self.endpoint:
                    options = {"api_endpoint": endpoint(self.endpoint, api, version)}
                    # Media uploads are built from rootUrl: point it at the endpoint too.
                    document = document | {"rootUrl": self.endpoint.rstrip("/") + "/"}
                self._clients[api, version] = _Collections(
                    discovery.build_from_document(
                        document,
                        credentials=self.credentials,
                        client_options=options,
                    )
                )
            return self._clients[api, version]

    def _http(self) -> Any:
        """This thread's connection: httplib2 is not thread-safe."""
        if not hasattr(self._local, "http"):
            import google_auth_httplib2

            self._local.http = google_auth_httplib2.AuthorizedHttp(
                self.credentials, http=httplib2.Http(timeout=60)
            )
        return self._local.http

    def budget(self, kind: retries.ErrorClass) -> float:
        return self.deadline if kind.budget == "transient" else self.propagation_deadline

    def call(self, resource: str, operation: str, request: Callable[[], Any]) -> Any:
        """Execute `request()` (a googleapiclient request factory), repeating it while it
        fails with an error of a retryable class, each class under its own deadline."""
        first_seen: dict[str, float] = {}
        delay = 0.2
        while True:
            built = request()
            try:
                return built.execute(http=self._http(), num_retries=0)
            except (HttpError, OSError, httplib2.HttpLib2Error) as error:
                failure, kind = retries.classify(error, self)
            if failure.status == 0:  # say where: the endpoint may be the mistake
                url = urlsplit(getattr(built, "uri", "") or "")
                where = f"{url.scheme}://{url.netloc}" if url.netloc else "the API"
                failure = dataclasses.replace(
                    failure, message=f"{failure.message} (calling {where})"
                )
            waited = (
                0.0
                if kind is None
                else time.monotonic() - first_seen.setdefault(kind.name, time.monotonic())
            )
            if kind is None or waited >= self.budget(kind):
                gave_up = (
                    f"gave up after {waited:.0f}s of retrying: {kind.name}; {kind.source}"
                    if kind
                    else ""
                )
                raise ApiCallFailed(
                    resource,
                    operation,
                    failure.status,
                    failure.message,
                    reason=failure.reason,
                    service_disabled=failure.service_disabled or "",
                    gave_up=gave_up,
                ) from None
            budget = self.budget(kind)
            time.sleep(min(delay * random.uniform(0.8, 1.2), budget - waited))  # noqa: S311
            delay = min(delay * 2, 10.0)

    def repeat(
        self,
        resource: str,
        operation: str,
        attempt: Callable[[int], None],
        kind: retries.ErrorClass,
    ) -> None:
        """Run `attempt(n)` until it does not fail with an operation error of `kind`, under
        that class's deadline (an error that surfaces only when the operation ends)."""
        started, delay, number = time.monotonic(), 0.5, 0
        while True:
            try:
                attempt(number)
                return
            except OperationFailed as error:
                failure = retries.Failure(0, error.message)
                waited = time.monotonic() - started
                if not kind.matches(failure, self):
                    raise
                if waited >= self.budget(kind):
                    raise OperationFailed(
                        resource,
                        operation,
                        f"{error.message} (gave up after {waited:.0f}s of retrying: "
                        f"{kind.name}; {kind.source})",
                    ) from None
            time.sleep(min(delay, max(self.budget(kind) - waited, 0.0)))
            delay, number = min(delay * 2, 15.0), number + 1

    def list_all(
        self, resource: str, field: str, request: Callable[[str | None], Any]
    ) -> list[dict[str, Any]]:
        """Every item of a list, page by page: `request(page_token)` makes one page's call.
        A disabled API holds nothing, so it lists nothing."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            try:
                page = self.call(resource, "list", functools.partial(request, token)) or {}
            except ApiCallFailed as error:
                if error.service_disabled:
                    return items
                raise
            items += page.get(field, [])
            token = page.get("nextPageToken")
            if not token:
                return items

    def get_or_none(self, resource: str, request: Callable[[], Any]) -> dict | None:
        """A read: 404 means absent, and so does 403 SERVICE_DISABLED for a service not
        enabled (on a fresh project, before the stack's first resources enable it)."""
        try:
            return self.call(resource, "read", request)
        except ApiCallFailed as error:
            if error.status == 404 or error.service_disabled:
                return None
            raise

    def wait(
        self, resource: str, operation: str, op: dict, get: Callable[[str], Any]
    ) -> dict | None:
        """Poll a long-running operation until done, with backoff, under a deadline."""
        started, delay = time.monotonic(), self.poll_initial
        while not op.get("done"):
            if time.monotonic() - started > self.operation_deadline:
                raise OperationTimedOut(resource, operation, self.operation_deadline)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)
            op = self.call(resource, operation, functools.partial(get, op["name"]))
        if "error" in op:
            raise OperationFailed(resource, operation, op["error"].get("message", str(op["error"])))
        return op.get("response")
