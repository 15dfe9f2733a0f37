//! Plan: pure decisions from the spec and the observation of what exists,
//! one planner per concern — keys (`keys`), rollout (`rollout`), restore
//! (`restore`), backups (`backups`) — plus what to prune and which
//! finalizers the instance carries. `pipeline` runs them for every stage.

pub mod backups;
pub mod engine;
pub mod keys;
pub mod restore;
pub mod rollout;

#[cfg(test)]
#[path = "backups_tests.rs"]
mod backups_tests;

use std::collections::HashSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};

use crate::api::{DeletionPolicy, MessengerInstance, Stage, StageStatus};
use crate::desired::Child;
use crate::names::{STAGE_LABEL, StageNames};
use crate::observe::{InstanceObservation, StageObservation};
use crate::validate::{ValidatedSpec, ValidatedStage};

/// The finalizer that deletes retained data, set only under
/// `deletionPolicy: Delete`.
pub const DELETE_DATA_FINALIZER: &str = "caduceus.dev/delete-data";

/// What the planners of one stage read.
#[derive(Clone, Debug)]
pub struct StageView<'a> {
    pub instance: &'a MessengerInstance,
    pub stage: &'a Stage,
    /// The stage's effective settings, from `validate`.
    pub settings: &'a ValidatedStage<'a>,
    pub names: StageNames,
    pub namespace: &'a str,
    /// The stage's recorded status.
    pub before: Option<&'a StageStatus>,
    pub observed: &'a StageObservation,
}

impl<'a> StageView<'a> {
    /// The views of every stage of a validated instance, in spec order.
    pub fn all(
        instance: &'a MessengerInstance,
        validated: &'a ValidatedSpec<'a>,
        namespace: &'a str,
        observed: &'a InstanceObservation,
    ) -> Vec<Self> {
        let name = instance.metadata.name.as_deref().unwrap_or_default();
        let previous = instance.status.as_ref();
        validated
            .stages
            .iter()
            .zip(&observed.stages)
            .map(|(settings, observed)| StageView {
                instance,
                stage: settings.stage,
                settings,
                names: StageNames::new(name, &settings.stage.name),
                namespace,
                before: previous
                    .and_then(|p| p.stages.iter().find(|s| s.name == settings.stage.name)),
                observed,
            })
            .collect()
    }
}

/// The owned children of the instance that are no longer desired (for
/// example those of a removed stage): `(kind, name)` to delete. Retained
/// data, Jobs and the objects of stalled stages are kept.
pub fn prune(
    instance: &MessengerInstance,
    children: &[Child],
    held_stages: &[&str],
    existing: &[(ApiResource, Arc<DynamicObject>)],
) -> Vec<(ApiResource, String)> {
    let wanted: HashSet<(String, String)> = children
        .iter()
        .map(|c| {
            (
                c.resource.kind.clone(),
                c.object.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let uid = instance.uid();
    existing
        .iter()
        .filter(|(resource, object)| {
            let owned_by_us = object
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| Some(&r.uid) == uid.as_ref() && r.controller == Some(true))
                });
            let key = (resource.kind.clone(), object.name_any());
            let held = object
                .labels()
                .get(STAGE_LABEL)
                .is_some_and(|stage| held_stages.contains(&stage.as_str()));
            // Jobs are records of what ran (backups, smoke tests): the
            // rollout reads them to know a step is done, so they are never
            // pruned; they go with the instance.
            let record = resource.kind == "Job";
            owned_by_us && !held && !record && !wanted.contains(&key)
        })
        .map(|(resource, object)| (resource.clone(), object.name_any()))
        .collect()
}

/// The retained data of an instance (objects without an owner reference),
/// deleted only under `deletionPolicy: Delete`.
pub fn retained_data(existing: &[(ApiResource, Arc<DynamicObject>)]) -> Vec<(ApiResource, String)> {
    existing
        .iter()
        .filter(|(_, object)| {
            object
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty)
        })
        .map(|(resource, object)| (resource.clone(), object.name_any()))
        .collect()
}

/// The finalizers the instance should carry, or `None` when they are right:
/// the data finalizer exactly when the deletion policy needs it.
pub fn finalizers(instance: &MessengerInstance) -> Option<Vec<String>> {
    let wanted = instance.spec.deletion_policy == DeletionPolicy::Delete;
    let present = has_data_finalizer(instance);
    if wanted == present {
        return None;
    }
    let mut finalizers = without_data_finalizer(instance);
    if wanted {
        finalizers.push(DELETE_DATA_FINALIZER.into());
    }
    Some(finalizers)
}

/// Whether the instance carries the data finalizer.
pub fn has_data_finalizer(instance: &MessengerInstance) -> bool {
    instance
        .finalizers()
        .iter()
        .any(|f| f == DELETE_DATA_FINALIZER)
}

/// The instance's finalizers without the data finalizer.
pub fn without_data_finalizer(instance: &MessengerInstance) -> Vec<String> {
    instance
        .finalizers()
        .iter()
        .filter(|f| *f != DELETE_DATA_FINALIZER)
        .cloned()
        .collect()
}
