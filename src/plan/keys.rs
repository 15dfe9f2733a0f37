//! What a stage needs before anything of it is built: a database engine it
//! can run, and its identity (the keys Secret). Planned from the
//! observation; minting a new identity is decided here and written by
//! `apply`.

use super::engine::{check_engine, running_engine};
use crate::desired::keys::StageSecrets;
use crate::status::{Stall, StallReason};

use super::StageView;

/// The stage's secret values, or the decision to store new ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keys {
    /// Read from the stage's keys Secret.
    Existing(StageSecrets),
    /// A stage that never had an identity: store these, created once.
    Mint(StageSecrets),
}

/// The stage's keys, if its database engine fits and its identity is
/// there (or may be created). `mint` makes the values of a new identity:
/// random in the controller, placeholders in `render`.
pub fn prerequisites(
    view: &StageView<'_>,
    mint: impl FnOnce() -> StageSecrets,
) -> Result<Keys, Stall> {
    check_database_engine(view)?;
    keys(view, mint)
}

/// Refuses a database engine change on a stage that already has a database:
/// that needs a migration, not a reconcile.
fn check_database_engine(view: &StageView<'_>) -> Result<(), Stall> {
    let observed = view.observed;
    let running = running_engine(
        view.before.and_then(|b| b.database_engine),
        observed.database.is_some(),
        observed.cluster.is_some(),
    );
    check_engine(
        &view.stage.name,
        &view.instance.spec,
        running,
        observed.cloudnative_pg_installed,
    )
    .map_err(|error| Stall::new(StallReason::InvalidSpec, error.to_string()))
}

/// The stage's keys from its keys Secret, or new ones for a stage that
/// never had any. A stage that had an identity and lost it stalls instead of
/// getting a new one.
fn keys(view: &StageView<'_>, mint: impl FnOnce() -> StageSecrets) -> Result<Keys, Stall> {
    let names = &view.names;
    let observed = view.observed;
    if let Some(secret) = &observed.keys_secret {
        return StageSecrets::from_secret(secret)
            .map(Keys::Existing)
            .map_err(|missing| {
                Stall::new(
                    StallReason::KeysIncomplete,
                    format!(
                        "stage {}: Secret {} lacks {}; restore it from a backup (the operator does not replace parts of a stage's identity)",
                        names.stage,
                        names.keys_secret(),
                        missing.join(", ")
                    ),
                )
            });
    }
    let had_identity = view
        .before
        .and_then(|b| b.signing_key_id.as_ref())
        .is_some()
        || observed.synapse.is_some()
        || observed.media.is_some();
    if had_identity {
        return Err(Stall::new(
            StallReason::KeysMissing,
            format!(
                "stage {}: Secret {} with the signing key is gone; restore it from a backup (`caduceus restore` or your Secret backup). \
                 The operator will not mint a new identity for a homeserver that already has data: other servers and clients would reject it.",
                names.stage,
                names.keys_secret()
            ),
        ));
    }
    if !super::restore::may_mint_keys(view.stage) {
        return Err(Stall::new(
            StallReason::KeysMissing,
            format!(
                "stage {}: a restore is requested but Secret {} is missing; apply it from the snapshot first \
                 (`restic dump <snapshot> /kubernetes/keys-secret.yaml | kubectl apply -f -`), so the restored \
                 homeserver keeps its identity",
                names.stage,
                names.keys_secret()
            ),
        ));
    }
    Ok(Keys::Mint(mint()))
}

/// The keys of a Secret someone else created between the cache read and
/// the create.
pub fn from_live_secret(
    names: &crate::names::StageNames,
    secret: &k8s_openapi::api::core::v1::Secret,
) -> Result<StageSecrets, Stall> {
    StageSecrets::from_secret(secret).map_err(|missing| {
        Stall::new(
            StallReason::KeysIncomplete,
            format!(
                "Secret {} lacks {}",
                names.keys_secret(),
                missing.join(", ")
            ),
        )
    })
}
