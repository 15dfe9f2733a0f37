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
/// The acknowledgement of an unlisted release is left out (it is not part of
/// what runs, and releases are compared with what the status recorded); see
/// `unlisted_release_acknowledged`.
pub fn effective_release(spec: &MessengerInstanceSpec, stage: &Stage) -> Release {
    let train = &spec.release;
    let pin = stage.release.clone().unwrap_or_default();
    Release {
        synapse: pin.synapse.unwrap_or_else(|| train.synapse.clone()),
        element_web: pin.element_web.unwrap_or_else(|| train.element_web.clone()),
        acknowledge_unlisted: false,
    }
}

/// Whether the stage's effective Synapse release is acknowledged as unlisted:
/// the acknowledgement goes with the Synapse release it was given for (the
/// stage's pin, else the train).
pub fn unlisted_release_acknowledged(spec: &MessengerInstanceSpec, stage: &Stage) -> bool {
    match stage.release.as_ref() {
        Some(pin) if pin.synapse.is_some() => pin.acknowledge_unlisted,
        _ => spec.release.acknowledge_unlisted,
    }
}
