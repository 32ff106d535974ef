"""The documented Google behaviours the fake reproduces, each switchable.

`Fidelity()` is the lenient fake (every rule off, as before); `Fidelity.strict()` turns
every rule on with short delays, which is what `make test` deploys against. Each flag's
rule lives in the module of the API it belongs to (`apis/`), next to its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace


@dataclass
class Fidelity:
    # Responses omit zero, false and empty values, as proto3 JSON does (all our APIs but
    # Cloud Storage's JSON API). https://protobuf.dev/programming-guides/json/
    proto3_omission: bool = False
    # The documented id and name rules of every kind we create, answered with Google's 400.
    id_rules: bool = False
    # Services start disabled (but Service Usage and Resource Manager); calls to a disabled
    # API answer 403 SERVICE_DISABLED, and go on doing so this long after the enable.
    services_disabled: bool = False
    enable_propagation: float = 0.0
    # An enable while another is in progress answers 400 "Another activation or deactivation
    # is in progress"; an enable stays in progress this long.
    enable_duration: float = 0.0
    # A new service account stays invisible (get 404; IAM members and function deployments
    # 400 "does not exist") this long.
    account_propagation: float = 0.0
    # The Eventarc service agent refuses this long after its first use.
    eventarc_agent_delay: float = 0.0
    # IAM: conditional bindings show only under requestedPolicyVersion 3; storage answers a
    # stale etag with 412 (others 409).
    policy_versions: bool = False
    # A function whose eventTrigger changes gets a new Eventarc trigger and subscription.
    trigger_recreation: bool = False
    # Lists answer this many items a page (0: all at once).
    page_size: int = 0
    # Function ids whose next builds fail (the function ends FAILED): a test switch.
    failing_builds: set[str] = field(default_factory=set)

    @classmethod
    def strict(cls, delay: float = 0.3) -> Fidelity:
        """Every rule on, delays short enough for tests."""
        return cls(
            proto3_omission=True,
            id_rules=True,
            services_disabled=True,
            enable_propagation=delay,
            enable_duration=delay / 3,
            account_propagation=delay,
            eventarc_agent_delay=delay,
            policy_versions=True,
            trigger_recreation=True,
            page_size=2,
        )

    def without(self, rule: str) -> Fidelity:
        """The same rules with one turned off (for tests of one rule)."""
        default = next(f for f in fields(self) if f.name == rule)
        off = default.default_factory() if callable(default.default_factory) else default.default
        return replace(self, **{rule: off})
