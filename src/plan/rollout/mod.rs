//! The rollout planner of a stage: release resolution, maintenance windows,
//! schema compatibility and the stage state machine, fed from the stage's
//! observation.

pub mod machine;
pub mod schema;
pub mod windows;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;

use crate::api::StageStatus;
use crate::names::release_suffix;
use crate::observe::jobs::job_state;
use crate::observe::readiness;

use self::machine::{Decision, Facts, Source, Workload};
use super::StageView;

/// The rollout decision of one stage, from its recorded status, the statuses
/// decided for the stages before it in this reconcile (its promotion
/// source), and what is observed of its Synapse, database and Jobs.
pub fn decide(view: &StageView<'_>, earlier: &[StageStatus], now: Timestamp) -> Decision {
    let (instance, stage, names, observed) =
        (view.instance, view.stage, &view.names, view.observed);
    let desired = view.settings.release.clone();
    let suffix = release_suffix(desired.synapse.as_str());
    let source = stage.promotion.as_ref().map(|promotion| Source {
        name: &promotion.from,
        status: earlier.iter().find(|status| status.name == promotion.from),
    });
    let facts = Facts {
        desired,
        previous: view.before,
        promotion: view.settings.promotion.as_ref(),
        source,
        paused: view.settings.paused,
        backups: instance.spec.backups.is_some(),
        backup_job: job_state(observed.job(&names.backup_job(&suffix))),
        smoke_job: job_state(observed.job(&names.smoke_test_job(&suffix))),
        workload: Workload {
            release: observed.synapse.as_ref().and_then(synapse_release),
            readiness: readiness::stateful_set_readiness(observed.synapse.as_ref())
                .map_err(|waiting| format!("Synapse: {waiting}"))
                .and_then(|()| {
                    readiness::database_readiness(
                        instance.spec.database.engine,
                        observed.database.as_ref(),
                        observed.cluster.as_ref(),
                    )
                }),
        },
        now,
    };
    machine::decide(&facts)
}

/// The Synapse release of a StatefulSet's pod template (its image tag).
fn synapse_release(set: &StatefulSet) -> Option<String> {
    let image = set
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()?;
    let name = image.rsplit('/').next()?;
    name.split_once(':').map(|(_, tag)| tag.to_owned())
}
