//! The data-protection profiles: defaults applied before the typed fields and
//! `settings`. Each key was checked against the configuration documentation
//! of the pinned Synapse release (see `synapse_keys.rs`).

use serde_json::{Value, json};

use crate::api::Profile;

/// How long messages are kept under `hospital-baseline` when
/// `retention.defaultMaxLifetime` is not set: a messenger is not the patient
/// record, so chats expire.
pub const BASELINE_MAX_LIFETIME: &str = "180d";
/// How long a login lasts under `hospital-baseline` when `sessionLifetime` is
/// not set.
pub const BASELINE_SESSION_LIFETIME: &str = "90d";
/// How often expired messages are purged under `hospital-baseline`.
pub const BASELINE_PURGE_INTERVAL: &str = "1d";

/// The profile's layer of `homeserver.yaml`.
pub fn profile_layer(profile: Profile) -> Value {
    match profile {
        Profile::HospitalBaseline => hospital_baseline(),
        // Synapse's own defaults: nothing to add.
        Profile::None => json!({}),
    }
}

/// What a data-protection officer expects of a hospital messenger.
fn hospital_baseline() -> Value {
    json!({
        // Every room end-to-end encrypted, not just private chats.
        "encryption_enabled_by_default_for_room_type": "all",
        // Messages expire unless a room's own policy says otherwise.
        "retention": {
            "enabled": true,
            "default_policy": {"max_lifetime": BASELINE_MAX_LIFETIME},
            "purge_jobs": [{"interval": BASELINE_PURGE_INTERVAL}],
        },
        "session_lifetime": BASELINE_SESSION_LIFETIME,
        // Nothing phones home: no stats, no third-party key server (matrix.org
        // would learn every server we talk to), no URL previews (the server
        // would fetch every link posted), no identity-server lookups.
        "report_stats": false,
        "trusted_key_servers": [],
        "suppress_key_server_warning": true,
        "url_preview_enabled": false,
        "enable_3pid_lookup": false,
        // Only known staff: no guests, registration closed.
        "allow_guest_access": false,
        "enable_registration": false,
        // Staff find only people they already share a room with, and see
        // profiles only then; an invite does not leak the inviter's profile.
        "user_directory": {"enabled": true, "search_all_users": false},
        "limit_profile_requests_to_users_who_share_rooms": true,
        "require_auth_for_profile_requests": true,
        "include_profile_data_on_invite": false,
        // The room directory is not public, locally or over federation.
        "allow_public_rooms_without_auth": false,
        "allow_public_rooms_over_federation": false,
        // Online status is behaviour monitoring of employees (a works-council
        // matter); off unless the hospital decides otherwise.
        "presence": {"enabled": false},
        // Push notifications go through Apple's and Google's servers: send
        // only the event id, never the message text.
        "push": {"include_content": false},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings_keys::synapse_keys::KNOWN_KEYS;

    #[test]
    fn every_baseline_key_is_a_synapse_key() {
        let baseline = hospital_baseline();
        for key in baseline.as_object().unwrap().keys() {
            assert!(
                KNOWN_KEYS.binary_search(&key.as_str()).is_ok(),
                "{key} is not a Synapse key"
            );
        }
    }

    #[test]
    fn profile_none_adds_nothing() {
        assert_eq!(profile_layer(Profile::None), json!({}));
    }
}
