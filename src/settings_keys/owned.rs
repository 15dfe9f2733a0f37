//! Keys of `homeserver.yaml` that `settings` may not set: those the operator
//! derives from the stage and its pod (a different value would break the pod
//! or leak a secret into a ConfigMap), and those a typed field sets (one way
//! to say one thing).

/// Top-level keys and what to do instead of setting them in `settings`.
pub const OWNED_KEYS: &[(&str, &str)] = &[
    (
        "backup_media_store_path",
        "the media store is the stage's volume (spec.media); back it up with spec.backups",
    ),
    (
        "bind_address",
        "the operator runs the listeners; open federation with spec.homeserver.federation.mode",
    ),
    (
        "bind_addresses",
        "the operator runs the listeners; open federation with spec.homeserver.federation.mode",
    ),
    (
        "bind_host",
        "the operator runs the listeners; open federation with spec.homeserver.federation.mode",
    ),
    (
        "bind_port",
        "the operator runs the listeners; open federation with spec.homeserver.federation.mode",
    ),
    (
        "daemonize",
        "Synapse runs in the foreground of its container",
    ),
    (
        "database",
        "the database comes from spec.database (engine, or external connection and passwordSecretRef)",
    ),
    ("database_path", "the database comes from spec.database"),
    (
        "enable_metrics",
        "the operator always serves metrics on its own listener",
    ),
    (
        "enable_registration",
        "set spec.homeserver.registration.mode instead (closed, token or sso)",
    ),
    (
        "encryption_enabled_by_default_for_room_type",
        "set spec.homeserver.encryption.enforce instead",
    ),
    (
        "federation_domain_whitelist",
        "set spec.homeserver.federation (mode allowlist with allowlist: [...]) instead",
    ),
    (
        "form_secret",
        "the operator generates it into the stage's keys Secret",
    ),
    (
        "form_secret_path",
        "the operator generates the form secret into the stage's keys Secret",
    ),
    (
        "listeners",
        "the operator runs the client, federation and metrics listeners; open federation with spec.homeserver.federation.mode",
    ),
    ("log_config", "the operator provides the log config"),
    (
        "log_file",
        "Synapse logs to stdout through the operator's log config",
    ),
    (
        "macaroon_secret_key",
        "the operator generates it into the stage's keys Secret",
    ),
    (
        "macaroon_secret_key_path",
        "the operator generates the macaroon secret into the stage's keys Secret",
    ),
    (
        "media_store_path",
        "the media store is the stage's volume; size it with spec.media",
    ),
    (
        "metrics_bind_host",
        "the operator always serves metrics on its own listener",
    ),
    (
        "metrics_port",
        "the operator always serves metrics on its own listener",
    ),
    ("no_tls", "TLS ends at the ingress (spec.access.ingress)"),
    (
        "oidc_providers",
        "set spec.homeserver.registration.oidcProviders (mode sso) instead",
    ),
    ("pid_file", "the operator sets it inside the container"),
    (
        "public_baseurl",
        "it is https://<spec.stages[].serverName>/",
    ),
    (
        "registration_requires_token",
        "set spec.homeserver.registration.mode: token instead",
    ),
    (
        "registration_shared_secret",
        "the operator generates it into the stage's keys Secret",
    ),
    (
        "registration_shared_secret_path",
        "the operator generates the registration shared secret into the stage's keys Secret",
    ),
    ("server_name", "set spec.stages[].serverName instead"),
    (
        "session_lifetime",
        "set spec.homeserver.sessionLifetime (or spec.stages[].homeserver.sessionLifetime) instead",
    ),
    (
        "signing_key",
        "the signing key lives in the stage's keys Secret",
    ),
    (
        "signing_key_path",
        "the signing key lives in the stage's keys Secret",
    ),
    (
        "tls_certificate_path",
        "TLS ends at the ingress (spec.access.ingress)",
    ),
    (
        "tls_private_key_path",
        "TLS ends at the ingress (spec.access.ingress)",
    ),
    ("unsecure_port", "the operator runs the listeners"),
];

/// Keys inside `retention` that typed fields set.
pub const OWNED_RETENTION_KEYS: &[(&[&str], &str)] = &[
    (
        &["enabled"],
        "set spec.homeserver.retention.enabled instead",
    ),
    (
        &["default_policy", "max_lifetime"],
        "set spec.homeserver.retention.defaultMaxLifetime instead",
    ),
    (
        &["allowed_lifetime_min"],
        "set spec.homeserver.retention.allowedMinLifetime instead",
    ),
    (
        &["allowed_lifetime_max"],
        "set spec.homeserver.retention.allowedMaxLifetime instead",
    ),
];

/// Keys of an `oidc_providers` entry that a provider's `settings` may not set.
pub const OWNED_OIDC_KEYS: &[(&str, &str)] = &[
    ("client_id", "set clientId instead"),
    (
        "client_secret",
        "client secrets are never written inline: put it in a Secret and set clientSecretRef",
    ),
    (
        "client_secret_path",
        "the operator mounts the Secret named by clientSecretRef",
    ),
    ("idp_id", "set id instead"),
    ("idp_name", "set name instead"),
    ("issuer", "set issuer instead"),
    ("scopes", "set scopes instead"),
];

/// What to do instead of setting the top-level `key` in `settings`, if the
/// operator owns it.
pub fn owned_key(key: &str) -> Option<&'static str> {
    OWNED_KEYS
        .binary_search_by(|(owned, _)| owned.cmp(&key))
        .ok()
        .map(|index| OWNED_KEYS[index].1)
}

/// What to do instead of setting `key` in an OIDC provider's `settings`.
pub fn owned_oidc_key(key: &str) -> Option<&'static str> {
    OWNED_OIDC_KEYS
        .iter()
        .find(|(owned, _)| *owned == key)
        .map(|(_, fix)| *fix)
}

#[cfg(test)]
mod tests {
    use super::super::synapse_keys::KNOWN_KEYS;
    use super::*;

    #[test]
    fn owned_keys_are_sorted_for_binary_search() {
        assert!(OWNED_KEYS.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn owned_keys_are_synapse_keys() {
        // `bind_address(es)` are listener sub-keys some guides put at the top
        // level; refusing them points at the right place.
        for (key, _) in OWNED_KEYS {
            if !key.starts_with("bind_address") {
                assert!(
                    KNOWN_KEYS.binary_search(key).is_ok(),
                    "{key} is not a Synapse key"
                );
            }
        }
    }
}
