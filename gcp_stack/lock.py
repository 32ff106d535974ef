"""One deploy or destroy at a time per stack, as Terraform's GCS backend does it: the lock is
an object created with `ifGenerationMatch=0`, which Cloud Storage creates only if no object
of that name exists (412 otherwise), so two machines see the same lock.

https://cloud.google.com/storage/docs/request-preconditions#special-case
https://developer.hashicorp.com/terraform/language/backend/gcs

The object lives in a bucket of its own (`<project>-gcp-stack-locks`), made on first use,
since the stack's own bucket does not exist before the first deploy; it holds who took the
lock, from where, when, and for which command. `force-unlock` deletes a stale one.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from googleapiclient.http import MediaIoBaseUpload

from gcp_stack.api import Api
from gcp_stack.errors import ApiCallFailed, GcpStackError
from gcp_stack.names import fit
from gcp_stack.resources.base import STACK_LABEL

STORAGE = "storage.googleapis.com"


class LockHeld(GcpStackError):
    pass


@dataclass
class StackLock:
    api: Api
    project: str
    stack: str
    generation: str = ""

    @property
    def bucket(self) -> str:
        return fit(f"{self.project}-gcp-stack-locks", 63)

    @property
    def object(self) -> str:
        return f"{self.stack}.lock"

    def _objects(self) -> Any:
        return self.api.client("storage", "v1").objects()

    def acquire(self, command: str) -> None:
        self._prepare()
        holder = {
            "who": f"{getpass.getuser()}@{socket.gethostname()}",
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": command,
        }
        media = MediaIoBaseUpload(
            io.BytesIO(json.dumps(holder).encode()), mimetype="application/json"
        )
        try:
            made = self.api.call(
                f"lock {self.object}",
                "take",
                lambda: self._objects().insert(
                    bucket=self.bucket, name=self.object, media_body=media, ifGenerationMatch=0
                ),
            )
        except ApiCallFailed as error:
            if error.status != 412:
                raise
            raise LockHeld(self._held_message()) from None
        self.generation = str(made.get("generation", ""))

    def _held_message(self) -> str:
        try:
            raw = self.api.call(
                f"lock {self.object}",
                "read",
                lambda: self._objects().get_media(bucket=self.bucket, object=self.object),
            )
            holder = json.loads(raw)
            who = (
                f"{holder['who']} (pid {holder['pid']}, `{holder['command']}`) "
                f"since {holder['since']}"
            )
        except (ApiCallFailed, ValueError, KeyError, TypeError):
            who = "someone"
        return (
            f"the stack {self.stack} is locked by {who}: wait for that run to finish, or, if it "
            f"died, clear the lock with `python -m gcp_stack force-unlock`"
        )

    def release(self) -> None:
        if not self.generation:
            return
        generation, self.generation = self.generation, ""
        self.api.call(
            f"lock {self.object}",
            "release",
            lambda: self._objects().delete(
                bucket=self.bucket, object=self.object, ifGenerationMatch=generation
            ),
        )

    def force_unlock(self) -> bool:
        """Delete the lock whoever holds it; False when there was none."""
        try:
            self.api.call(
                f"lock {self.object}",
                "force-unlock",
                lambda: self._objects().delete(bucket=self.bucket, object=self.object),
            )
        except ApiCallFailed as error:
            if error.status == 404:
                return False
            raise
        return True

    def _prepare(self) -> None:
        """Cloud Storage enabled and the lock bucket there (idempotent, outside the lock)."""
        services = self.api.client("serviceusage", "v1").services()
        name = f"projects/{self.project}/services/{STORAGE}"
        live = self.api.call("lock", "read", lambda: services.get(name=name)) or {}
        if live.get("state") != "ENABLED":
            op = self.api.call("lock", "enable", lambda: services.enable(name=name, body={}))
            self.api.wait("lock", "enable", op, lambda n: self.api.client(
                "serviceusage", "v1").operations().get(name=n))  # fmt: skip
        self.api.enabled.add(STORAGE)
        body = {
            "name": self.bucket,
            "labels": {STACK_LABEL: "gcp-stack-locks"},
            "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": True},
                "publicAccessPrevention": "enforced",
            },
        }
        buckets = self.api.client("storage", "v1").buckets()
        try:
            self.api.call("lock bucket", "create",
                          lambda: buckets.insert(project=self.project, body=body))  # fmt: skip
        except ApiCallFailed as error:
            if error.status != 409:  # there already
                raise
