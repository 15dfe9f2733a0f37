"""What a stage's Synapse should do, worked out from the MessengerInstance
alone (not from the rendered files), so the suite checks the operator's
rendering against the API's meaning."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# hospital-baseline's defaults where the typed fields are unset.
BASELINE_SESSION_LIFETIME = "90d"
BASELINE_MAX_LIFETIME = "180d"

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}


def millis(duration: str | None) -> int | None:
    if duration is None:
        return None
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert match, f"not a duration: {duration}"
    return int(match.group(1)) * UNITS[match.group(2)]


# Profile keys Synapse reads back, as (homeserver.yaml key, config attribute,
# value): checked unless the case's settings touch that key.
BASELINE_ATTRIBUTES = [
    ("report_stats", "metrics.report_stats", False),
    ("trusted_key_servers", "key.key_servers", []),
    ("url_preview_enabled", "media.url_preview_enabled", False),
    ("enable_3pid_lookup", "registration.enable_3pid_lookup", False),
    ("allow_guest_access", "registration.allow_guest_access", False),
    ("user_directory", "userdirectory.user_directory_search_all_users", False),
    ("limit_profile_requests_to_users_who_share_rooms", "server.limit_profile_requests_to_users_who_share_rooms", True),
    ("require_auth_for_profile_requests", "server.require_auth_for_profile_requests", True),
    ("include_profile_data_on_invite", "server.include_profile_data_on_invite", False),
    ("allow_public_rooms_without_auth", "server.allow_public_rooms_without_auth", False),
    ("allow_public_rooms_over_federation", "server.allow_public_rooms_over_federation", False),
    ("presence", "server.presence_enabled", False),
    ("push", "push.push_include_content", False),
]


@dataclass
class Expectations:
    baseline: bool
    encrypted: bool
    session_lifetime_ms: int | None
    retention_enabled: bool
    retention_default_max_ms: int | None
    registration: str  # closed | token | sso
    oidc_ids: list[str]
    federation: str  # closed | allowlist | open
    allowlist: list[str]
    settings_keys: set[str]
    # "attribute.path" -> value, from `# expect-config: …` lines of a fixture
    extra: dict[str, object] = field(default_factory=dict)


def expectations(path: Path, stage_name: str) -> Expectations:
    text = path.read_text()
    instance = yaml.safe_load(text)
    spec = instance["spec"]
    hs = spec.get("homeserver") or {}
    stage = next(s for s in spec["stages"] if s["name"] == stage_name)
    shs = stage.get("homeserver") or {}
    baseline = hs.get("profile", "hospital-baseline") == "hospital-baseline"

    encryption = hs.get("encryption")
    encrypted = encryption["enforce"] if encryption is not None else baseline

    lifetime = shs.get("sessionLifetime") or hs.get("sessionLifetime")
    if lifetime is None and baseline:
        lifetime = BASELINE_SESSION_LIFETIME

    retention = {**(hs.get("retention") or {}), **(shs.get("retention") or {})}
    if retention:
        retention_enabled = retention.get("enabled", True)
    else:
        retention_enabled = baseline
    default_max = retention.get("defaultMaxLifetime") or (BASELINE_MAX_LIFETIME if baseline else None)

    registration = hs.get("registration") or {}
    federation = hs.get("federation") or {}
    settings_keys = set((hs.get("settings") or {}).keys()) | set((shs.get("settings") or {}).keys())

    extra: dict[str, object] = {}
    for line in text.splitlines():
        match = re.match(r"# expect-config(?:\[([a-z0-9-]+)\])?: ([\w.]+) = (.+)$", line)
        if match and match.group(1) in (None, stage_name):
            extra[match.group(2)] = yaml.safe_load(match.group(3).replace("True", "true").replace("False", "false"))

    return Expectations(
        baseline=baseline,
        encrypted=encrypted,
        session_lifetime_ms=millis(lifetime),
        retention_enabled=retention_enabled,
        retention_default_max_ms=millis(default_max) if retention_enabled else None,
        registration=registration.get("mode", "closed"),
        oidc_ids=[p["id"] for p in registration.get("oidcProviders", [])],
        federation=federation.get("mode", "closed"),
        allowlist=federation.get("allowlist", []),
        settings_keys=settings_keys,
        extra=extra,
    )
