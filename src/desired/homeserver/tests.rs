use serde_json::json;

use super::*;
use crate::api::MessengerInstanceSpec;
use crate::desired::database::DatabaseConnection;

use crate::api::fixtures::spec_with_homeserver as spec;

/// The files of a stage as the pipeline makes them: validated, then built.
/// Settings `validate` refuses are never built.
fn homeserver_files(
    spec: &MessengerInstanceSpec,
    stage: &Stage,
    database: &DatabaseConnection,
    secrets: &StageSecrets,
) -> Result<HomeserverFiles, String> {
    let validated = crate::validate::validate(spec).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let stage = validated
        .stages
        .iter()
        .find(|s| s.stage.name == stage.name)
        .expect("the stage is in the spec");
    Ok(super::homeserver_files(stage, database, secrets))
}

fn config(spec: &MessengerInstanceSpec) -> Value {
    homeserver_config(spec, &spec.stages[0])
}

fn connection() -> DatabaseConnection {
    DatabaseConnection {
        host: "um-beta-db".into(),
        port: 5432,
        database: "synapse".into(),
        user: "synapse".into(),
        ssl_mode: None,
    }
}

#[test]
fn baseline_is_the_default_profile_and_hospital_safe() {
    let c = config(&spec("{}", ""));
    assert_eq!(c["encryption_enabled_by_default_for_room_type"], "all");
    assert_eq!(c["retention"]["enabled"], true);
    assert_eq!(
        c["retention"]["default_policy"]["max_lifetime"],
        BASELINE_MAX_LIFETIME
    );
    assert_eq!(
        c["retention"]["purge_jobs"],
        json!([{"interval": BASELINE_PURGE_INTERVAL}])
    );
    assert_eq!(c["session_lifetime"], BASELINE_SESSION_LIFETIME);
    assert_eq!(c["report_stats"], false);
    assert_eq!(c["trusted_key_servers"], json!([]));
    assert_eq!(c["suppress_key_server_warning"], true);
    assert_eq!(c["url_preview_enabled"], false);
    assert_eq!(c["allow_guest_access"], false);
    assert_eq!(c["enable_registration"], false);
    assert_eq!(
        c["user_directory"],
        json!({"enabled": true, "search_all_users": false})
    );
    assert_eq!(c["limit_profile_requests_to_users_who_share_rooms"], true);
    assert_eq!(c["require_auth_for_profile_requests"], true);
    assert_eq!(c["federation_domain_whitelist"], json!([]));
}

#[test]
fn profile_none_leaves_synapse_defaults_but_stays_closed() {
    let c = config(&spec("{profile: none}", ""));
    for key in [
        "encryption_enabled_by_default_for_room_type",
        "retention",
        "session_lifetime",
        "url_preview_enabled",
    ] {
        assert!(c.get(key).is_none(), "{key} should be Synapse's default");
    }
    // Synapse insists on a choice; registration and federation default closed.
    assert_eq!(c["report_stats"], false);
    assert_eq!(c["enable_registration"], false);
    assert_eq!(c["federation_domain_whitelist"], json!([]));
}

#[test]
fn typed_fields_override_the_profile() {
    let c = config(&spec(
        "{encryption: {enforce: false}, sessionLifetime: 30d, retention: {defaultMaxLifetime: 1y, allowedMinLifetime: 1d, allowedMaxLifetime: 2y, purgeInterval: 12h}}",
        "",
    ));
    assert_eq!(c["encryption_enabled_by_default_for_room_type"], "off");
    assert_eq!(c["session_lifetime"], "30d");
    assert_eq!(
        c["retention"],
        json!({
            "enabled": true,
            "default_policy": {"max_lifetime": "1y"},
            "allowed_lifetime_min": "1d",
            "allowed_lifetime_max": "2y",
            "purge_jobs": [{"interval": "12h"}],
        })
    );
}

#[test]
fn retention_can_be_switched_off_and_on_without_the_profile() {
    let off = config(&spec("{retention: {enabled: false}}", ""));
    assert_eq!(off["retention"]["enabled"], false);
    let on = config(&spec(
        "{profile: none, retention: {defaultMaxLifetime: 30d}}",
        "",
    ));
    assert_eq!(
        on["retention"],
        json!({"enabled": true, "default_policy": {"max_lifetime": "30d"}})
    );
}

#[test]
fn settings_merge_last_and_deep() {
    let c = config(&spec(
        "{settings: {push: {jitter_delay: 10s}, presence: null, url_preview_enabled: true, max_upload_size: 100M}}",
        "",
    ));
    // Deep: the profile's push.include_content stays.
    assert_eq!(
        c["push"],
        json!({"include_content": false, "jitter_delay": "10s"})
    );
    // null removes the profile's key: Synapse's default applies.
    assert!(c.get("presence").is_none());
    assert_eq!(c["url_preview_enabled"], true);
    assert_eq!(c["max_upload_size"], "100M");
}

#[test]
fn stage_overrides_apply_over_the_instance() {
    let s = spec(
        "{sessionLifetime: 30d, retention: {defaultMaxLifetime: 1y, allowedMaxLifetime: 2y}, settings: {max_upload_size: 100M, push: {jitter_delay: 10s}}}",
        "{sessionLifetime: 1d, retention: {defaultMaxLifetime: 7d}, settings: {max_upload_size: 10M, push: {group_unread_count_by_room: false}}}",
    );
    let c = config(&s);
    assert_eq!(c["session_lifetime"], "1d");
    assert_eq!(c["retention"]["default_policy"]["max_lifetime"], "7d");
    // Fields the stage leaves out follow the instance.
    assert_eq!(c["retention"]["allowed_lifetime_max"], "2y");
    assert_eq!(c["max_upload_size"], "10M");
    assert_eq!(
        c["push"],
        json!({"include_content": false, "jitter_delay": "10s", "group_unread_count_by_room": false})
    );
}

#[test]
fn registration_modes() {
    let token = config(&spec("{registration: {mode: token}}", ""));
    assert_eq!(token["enable_registration"], true);
    assert_eq!(token["registration_requires_token"], true);

    let sso = config(&spec(
        "{registration: {mode: sso, oidcProviders: [{id: keycloak, name: Hospital Login, issuer: 'https://sso.example.org/realms/h', clientId: synapse, clientSecretRef: {name: oidc, key: secret}, scopes: [profile, openid], settings: {allow_existing_users: true}}]}}",
        "",
    ));
    assert_eq!(sso["enable_registration"], false);
    assert_eq!(
        sso["oidc_providers"],
        json!([{
            "idp_id": "keycloak",
            "idp_name": "Hospital Login",
            "issuer": "https://sso.example.org/realms/h",
            "client_id": "synapse",
            "client_secret_path": "/secrets/oidc/keycloak/secret",
            "scopes": ["openid", "profile"],
            "user_mapping_provider": {"config": {"localpart_template": "{{ user.preferred_username }}"}},
            "allow_existing_users": true,
        }])
    );
    assert_eq!(
        oidc_secret_mounts(&spec(
            "{registration: {mode: sso, oidcProviders: [{id: keycloak, issuer: 'https://x', clientId: c, clientSecretRef: {name: oidc, key: secret}}]}}",
            ""
        )),
        vec![(
            "oidc".to_owned(),
            "secret".to_owned(),
            "/secrets/oidc/keycloak/secret".to_owned()
        )]
    );
    assert!(oidc_secret_mounts(&spec("{}", "")).is_empty());
}

#[test]
fn federation_modes_and_listeners() {
    let ports = |c: &Value| -> Vec<i64> {
        c["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["port"].as_i64().unwrap())
            .collect()
    };
    let closed = spec("{federation: {mode: closed}}", "");
    assert_eq!(config(&closed)["federation_domain_whitelist"], json!([]));
    assert_eq!(ports(&config(&closed)), vec![8008, 9000]);
    assert!(!federation_listener(&closed, &closed.stages[0]));

    let allow = spec(
        "{federation: {mode: allowlist, allowlist: [a.example.org, b.example.org]}}",
        "",
    );
    assert_eq!(
        config(&allow)["federation_domain_whitelist"],
        json!(["a.example.org", "b.example.org"])
    );
    assert_eq!(ports(&config(&allow)), vec![8008, 8448, 9000]);
    assert!(federation_listener(&allow, &allow.stages[0]));

    let open = spec("{federation: {mode: open}}", "");
    assert!(config(&open).get("federation_domain_whitelist").is_none());
    assert_eq!(ports(&config(&open)), vec![8008, 8448, 9000]);
}

#[test]
fn federation_listener_matches_the_statefulset_decision() {
    for mode in ["closed", "allowlist, allowlist: [a.example.org]", "open"] {
        let s = spec(&format!("{{federation: {{mode: {mode}}}}}"), "");
        let instance = crate::api::MessengerInstance::new("um", s.clone());
        assert_eq!(
            federation_listener(&s, &s.stages[0]),
            crate::desired::federation_enabled(&instance, &s.stages[0]),
            "{mode}"
        );
    }
}

#[test]
fn owned_keys_come_from_the_stage() {
    let c = config(&spec("{}", ""));
    assert_eq!(c["server_name"], "beta.example.org");
    assert_eq!(c["public_baseurl"], "https://beta.example.org/");
    assert_eq!(c["signing_key_path"], "/secrets/keys/signing.key");
    assert_eq!(c["media_store_path"], "/media");
    assert_eq!(c["log_config"], "/config/log.yaml");
    assert_eq!(c["enable_metrics"], true);
    assert_eq!(c["listeners"][0]["x_forwarded"], true);
    assert_eq!(
        c["listeners"][0]["resources"][0]["names"],
        json!(["client"])
    );
}

#[test]
fn secrets_and_database_live_only_in_the_secret_file() {
    let s = spec("{}", "");
    let secrets = StageSecrets::generate();
    let files = homeserver_files(&s, &s.stages[0], &connection(), &secrets).unwrap();
    for value in [
        &secrets.registration_shared_secret,
        &secrets.macaroon_secret_key,
        &secrets.form_secret,
        &secrets.database_password,
    ] {
        assert!(!files.homeserver_yaml.contains(value.as_str()));
        assert!(files.secrets_yaml.contains(value.as_str()));
    }
    let public: Value = serde_saphyr::from_str(&files.homeserver_yaml).unwrap();
    let secret: Value = serde_saphyr::from_str(&files.secrets_yaml).unwrap();
    // Synapse merges -c files only at the top level: no key in both.
    for key in secret.as_object().unwrap().keys() {
        assert!(public.get(key).is_none(), "{key} is in both files");
    }
    assert_eq!(secret["database"]["args"]["host"], "um-beta-db");
    assert_eq!(secret["database"]["name"], "psycopg2");
}

#[test]
fn rendering_is_deterministic() {
    let s = spec(
        "{settings: {push: {jitter_delay: 10s}, max_upload_size: 10M, room_list_publication_rules: [{action: deny}]}}",
        "",
    );
    let secrets = StageSecrets::placeholders();
    let first = homeserver_files(&s, &s.stages[0], &connection(), &secrets).unwrap();
    let second = homeserver_files(&s, &s.stages[0], &connection(), &secrets).unwrap();
    assert_eq!(first, second);
}

#[test]
fn invalid_homeserver_settings_are_refused_by_the_builder() {
    let s = spec("{settings: {server_name: evil.example.org}}", "");
    let error = homeserver_files(
        &s,
        &s.stages[0],
        &connection(),
        &StageSecrets::placeholders(),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("spec.homeserver.settings.server_name"),
        "{error}"
    );
}

#[test]
fn milliseconds_become_numbers_for_synapse() {
    assert_eq!(synapse_duration(&Duration::from("1500ms")), json!(1500));
    assert_eq!(synapse_duration(&Duration::from("90d")), json!("90d"));
}
