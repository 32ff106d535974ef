"""The names the stack gives what it creates, derived from the environment and project so
that they always fit Google's limits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Google's length limits for the ids we derive from the environment and project names:
# bucket names 3-63 (https://cloud.google.com/storage/docs/buckets#naming), service account
# ids 6-30 (verify/validation.go: ServiceAccountNameRegex), Workload Identity pool and
# provider ids 4-32 (iambeta: ValidateWorkloadIdentityPool{,Provider}Id), function ids 63.
LIMITS = {"bucket": 63, "account": 30, "pool": 32, "function": 63}


def fit(name: str, limit: int) -> str:
    """`name`, or when longer than `limit` its start and a hash of the whole, so that two
    long names never collide; ends with a letter or digit, as every id must."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class Names:
    prefix: str
    project: str

    @property
    def bucket(self) -> str:
        return fit(f"{self.project}-{self.prefix}-assets", LIMITS["bucket"])

    def account(self, role: str) -> str:
        return fit(f"{self.prefix}-{role}", LIMITS["account"])

    def email(self, role: str) -> str:
        return f"{self.account(role)}@{self.project}.iam.gserviceaccount.com"

    @property
    def topic(self) -> str:
        return f"{self.prefix}-submissions"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}-dead-letter"

    @property
    def receipts(self) -> str:
        return f"{self.prefix}-receipts"

    @property
    def receipts_subscription(self) -> str:
        return f"{self.prefix}-receipts-relay"

    @property
    def pool(self) -> str:
        return fit(f"{self.prefix}-aws", LIMITS["pool"])

    @property
    def provider(self) -> str:
        return "aws-relay"  # unique within its pool; 4-32 characters, not "gcp-…"

    def function(self, role: str) -> str:
        return fit(f"{self.prefix}-{role}", LIMITS["function"])
