//! Effective per-stage settings: what a stage's overrides and the
//! instance's defaults amount to. Read by `validate` and `desired` alike.

use super::{MessengerInstanceSpec, Release, Retention, Stage};

/// The retention policy in force on a stage: each field of the stage's
/// override replaces the instance's.
pub fn effective_retention(spec: &MessengerInstanceSpec, stage: &Stage) -> Option<Retention> {
    let instance = spec.homeserver.retention.as_ref();
    let stage = stage.homeserver.as_ref().and_then(|o| o.retention.as_ref());
    match (instance, stage) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => Some(only.clone()),
        (Some(base), Some(over)) => Some(Retention {
            enabled: over.enabled.or(base.enabled),
            default_max_lifetime: over
                .default_max_lifetime
                .clone()
                .or_else(|| base.default_max_lifetime.clone()),
            allowed_min_lifetime: over
                .allowed_min_lifetime
                .clone()
                .or_else(|| base.allowed_min_lifetime.clone()),
            allowed_max_lifetime: over
                .allowed_max_lifetime
                .clone()
                .or_else(|| base.allowed_max_lifetime.clone()),
            purge_interval: over
                .purge_interval
                .clone()
                .or_else(|| base.purge_interval.clone()),
        }),
    }
}

/// The release a stage's spec asks for: its own pin where set, else the train.
pub fn effective_release(spec: &MessengerInstanceSpec, stage: &Stage) -> Release {
    let train = &spec.release;
    let pin = stage.release.clone().unwrap_or_default();
    Release {
        synapse: pin.synapse.unwrap_or_else(|| train.synapse.clone()),
        element_web: pin.element_web.unwrap_or_else(|| train.element_web.clone()),
    }
}
