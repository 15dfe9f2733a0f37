//! A stage's identity and generated secrets: the Matrix signing key, the
//! registration shared secret, the macaroon and form secrets and the managed
//! database's password. They live in one Secret per stage, created once and
//! never overwritten; the operator refuses to mint a second identity.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use rand::RngExt as _;
use rand::distr::Alphanumeric;

use crate::names::StageNames;

/// Key of the signing key file in the keys Secret.
pub const SIGNING_KEY: &str = "signing.key";
/// Key of the registration shared secret.
pub const REGISTRATION_SHARED_SECRET: &str = "registration-shared-secret";
/// Key of the macaroon secret key.
pub const MACAROON_SECRET_KEY: &str = "macaroon-secret-key";
/// Key of the form secret.
pub const FORM_SECRET: &str = "form-secret";
/// Key of the managed database's password.
pub const DATABASE_PASSWORD: &str = "database-password";

/// Every key the keys Secret holds.
pub const ALL_KEYS: [&str; 5] = [
    SIGNING_KEY,
    REGISTRATION_SHARED_SECRET,
    MACAROON_SECRET_KEY,
    FORM_SECRET,
    DATABASE_PASSWORD,
];

/// What `caduceus render` shows instead of a secret value.
pub const PLACEHOLDER: &str = "<generated-once-by-the-operator>";

/// The secret values of a stage, as read from its keys Secret (or
/// placeholders when rendering offline).
#[derive(Clone, PartialEq, Eq)]
pub struct StageSecrets {
    pub signing_key: String,
    pub registration_shared_secret: String,
    pub macaroon_secret_key: String,
    pub form_secret: String,
    pub database_password: String,
}

// Secret values never reach a log line, not even through `{:?}`.
impl std::fmt::Debug for StageSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageSecrets { .. }")
    }
}

impl StageSecrets {
    /// Placeholders for offline rendering.
    pub fn placeholders() -> Self {
        Self {
            signing_key: format!("ed25519 a_XXXX {PLACEHOLDER}"),
            registration_shared_secret: PLACEHOLDER.into(),
            macaroon_secret_key: PLACEHOLDER.into(),
            form_secret: PLACEHOLDER.into(),
            database_password: PLACEHOLDER.into(),
        }
    }

    /// Fresh values from the operating system's random source.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut seed = [0u8; 32];
        rng.fill(&mut seed);
        let key_id: String = (0..4).map(|_| rng.sample(Alphanumeric) as char).collect();
        let mut token =
            |len: usize| -> String { (0..len).map(|_| rng.sample(Alphanumeric) as char).collect() };
        Self {
            signing_key: format!("ed25519 a_{key_id} {}", STANDARD_NO_PAD.encode(seed)),
            registration_shared_secret: token(64),
            macaroon_secret_key: token(64),
            form_secret: token(64),
            database_password: token(40),
        }
    }

    /// Reads the values from a keys Secret; `None` lists the missing keys.
    pub fn from_secret(secret: &Secret) -> Result<Self, Vec<&'static str>> {
        let data = secret.data.clone().unwrap_or_default();
        let missing: Vec<&'static str> = ALL_KEYS
            .iter()
            .copied()
            .filter(|key| !data.contains_key(*key))
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let text = |key: &str| String::from_utf8_lossy(&data[key].0).into_owned();
        Ok(Self {
            signing_key: text(SIGNING_KEY),
            registration_shared_secret: text(REGISTRATION_SHARED_SECRET),
            macaroon_secret_key: text(MACAROON_SECRET_KEY),
            form_secret: text(FORM_SECRET),
            database_password: text(DATABASE_PASSWORD),
        })
    }

    /// The signing key's id, for example `a_Xk3q`.
    pub fn signing_key_id(&self) -> Option<&str> {
        self.signing_key.split_whitespace().nth(1)
    }

    fn data(&self) -> BTreeMap<String, ByteString> {
        let entry =
            |key: &str, value: &str| (key.to_owned(), ByteString(value.as_bytes().to_vec()));
        BTreeMap::from([
            entry(SIGNING_KEY, &self.signing_key),
            entry(REGISTRATION_SHARED_SECRET, &self.registration_shared_secret),
            entry(MACAROON_SECRET_KEY, &self.macaroon_secret_key),
            entry(FORM_SECRET, &self.form_secret),
            entry(DATABASE_PASSWORD, &self.database_password),
        ])
    }
}

/// The keys Secret of a stage. It carries no owner reference: it outlives the
/// instance unless the deletion policy says otherwise.
pub fn keys_secret(names: &StageNames, namespace: &str, secrets: &StageSecrets) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(names.keys_secret()),
            namespace: Some(namespace.to_owned()),
            labels: Some(names.labels("keys")),
            annotations: Some(BTreeMap::from([(
                "caduceus.dev/keep".to_owned(),
                "This Secret is the stage's Matrix identity. Deleting it does not make a new one: the stage stalls until it is restored from a backup.".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        data: Some(secrets.data()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_has_synapse_format() {
        let secrets = StageSecrets::generate();
        let parts: Vec<&str> = secrets.signing_key.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "ed25519");
        assert!(parts[1].starts_with("a_") && parts[1].len() == 6);
        let seed = STANDARD_NO_PAD.decode(parts[2]).expect("unpadded base64");
        assert_eq!(seed.len(), 32);
        assert!(!parts[2].ends_with('='));
    }

    #[test]
    fn generated_values_differ() {
        let a = StageSecrets::generate();
        let b = StageSecrets::generate();
        assert_ne!(a.signing_key, b.signing_key);
        assert_ne!(a.macaroon_secret_key, b.macaroon_secret_key);
    }

    #[test]
    fn secret_round_trips_and_reports_missing_keys() {
        let names = StageNames::new("i", "beta");
        let secrets = StageSecrets::generate();
        let secret = keys_secret(&names, "ns", &secrets);
        assert_eq!(StageSecrets::from_secret(&secret).unwrap(), secrets);
        let mut partial = secret.clone();
        partial.data.as_mut().unwrap().remove(FORM_SECRET);
        assert_eq!(
            StageSecrets::from_secret(&partial).unwrap_err(),
            vec![FORM_SECRET]
        );
    }

    #[test]
    fn debug_hides_values() {
        let secrets = StageSecrets::generate();
        assert!(!format!("{secrets:?}").contains(&secrets.form_secret));
    }
}
