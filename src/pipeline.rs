//! The pure middle of a reconcile: for every stage, the planners' decisions
//! and the desired objects that follow from them. The controller runs it on
//! what it observed; `render` runs it on an empty observation, so both
//! produce the very same objects.

use k8s_openapi::jiff::Timestamp;

use crate::api::{StagePhase, StageStatus};
use crate::desired::backup::BackupInputs;
use crate::desired::keys::StageSecrets;
use crate::desired::{self, Child, StageInputs};
use crate::plan::{StageView, backups, restore, rollout};
use crate::status::{Stall, StallReason};
use crate::validate::releases::ReleaseSupport;

/// What was decided for one stage: its next status, and why it cannot go
/// on, if it cannot.
#[derive(Clone, Debug, PartialEq)]
pub struct StageOutcome {
    pub status: StageStatus,
    pub stall: Option<Stall>,
}

impl StageOutcome {
    /// A stage that cannot go on: Blocked with the stall's message, the rest
    /// of its status as recorded.
    fn blocked(name: &str, before: Option<&StageStatus>, stall: Stall) -> Self {
        Self {
            status: StageStatus {
                name: name.to_owned(),
                phase: StagePhase::Blocked,
                message: Some(stall.message.clone()),
                ..before.cloned().unwrap_or_default()
            },
            stall: Some(stall),
        }
    }
}

/// Everything decided for an instance.
#[derive(Clone, Debug)]
pub struct InstancePlan {
    /// Applied with server-side apply, in this order.
    pub children: Vec<Child>,
    /// Created once and never changed: Jobs are named after what they do
    /// (for example the release they back up), so a restarted operator finds
    /// them instead of running them twice.
    pub jobs: Vec<Child>,
    /// One outcome per stage, in spec order.
    pub stages: Vec<StageOutcome>,
}

impl InstancePlan {
    /// The first stall of any stage.
    pub fn stall(&self) -> Option<&Stall> {
        self.stages.iter().find_map(|o| o.stall.as_ref())
    }

    /// The stages that stalled: their workloads are kept as they are, since
    /// pruning them would turn a missing Secret into an outage.
    pub fn held_stages(&self) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|o| o.stall.is_some())
            .map(|o| o.status.name.as_str())
            .collect()
    }
}

/// Plans every stage of an instance. `keys` holds, per stage in spec order,
/// its secret values or why it cannot have them (from `keys::prerequisites`,
/// after `apply` created what it minted).
pub fn plan_instance(
    views: &[StageView<'_>],
    keys: Vec<Result<StageSecrets, Stall>>,
    now: Timestamp,
) -> InstancePlan {
    let mut resources = Vec::new();
    let mut jobs = Vec::new();
    let mut outcomes: Vec<StageOutcome> = Vec::new();
    for (view, keys) in views.iter().zip(keys) {
        let earlier: Vec<StageStatus> = outcomes.iter().map(|o| o.status.clone()).collect();
        match keys.and_then(|secrets| plan_stage(view, &secrets, &earlier, now)) {
            Ok(stage) => {
                resources.push(stage.resources);
                jobs.extend(stage.jobs);
                outcomes.push(StageOutcome {
                    status: stage.status,
                    stall: None,
                });
            }
            Err(stall) => {
                outcomes.push(StageOutcome::blocked(&view.stage.name, view.before, stall))
            }
        }
    }
    let children = match views.first() {
        Some(view) => desired::children(view.instance, resources),
        None => Vec::new(),
    };
    InstancePlan {
        children,
        jobs,
        stages: outcomes,
    }
}

/// The plan of one stage whose keys are known.
struct StagePlan {
    resources: desired::StageResources,
    jobs: Vec<Child>,
    status: StageStatus,
}

fn plan_stage(
    view: &StageView<'_>,
    secrets: &StageSecrets,
    earlier: &[StageStatus],
    now: Timestamp,
) -> Result<StagePlan, Stall> {
    let (instance, stage, names) = (view.instance, view.stage, &view.names);
    // Without the schema table's word on the release, no rollback guard.
    if let ReleaseSupport::Unlisted { message } = &view.settings.release_support {
        return Err(Stall::new(StallReason::UnlistedRelease, message.clone()));
    }
    let decision = rollout::decide(view, earlier, now);
    let inputs = StageInputs {
        settings: view.settings,
        secrets,
        release: decision.deploy.clone(),
    };
    let mut resources = desired::build_stage(instance, &inputs)
        .map_err(|error| Stall::new(StallReason::InvalidSpec, error.to_string()))?;
    let backup_inputs = BackupInputs::new(&instance.spec, stage, names, view.namespace);
    let (restore, restore_action) = restore::plan_restore(
        backup_inputs.as_ref().map(|inputs| inputs.names),
        stage,
        view.before,
        &view.observed.jobs,
        &view.observed.pods,
    );
    let held_for_restore = restore::hold_synapse(&restore_action);
    if held_for_restore {
        desired::hold_synapse(&mut resources);
    }
    let restore_job = match restore_action {
        restore::RestoreAction::Run(run) => backup_inputs
            .as_ref()
            .map(|inputs| desired::backup::restore_job(inputs, &run.snapshot)),
        restore::RestoreAction::None | restore::RestoreAction::Hold => None,
    };
    let jobs = desired::stage_jobs(
        instance,
        restore_job,
        desired::rollout_jobs(
            instance,
            stage,
            names,
            view.namespace,
            decision.start_backup.as_ref(),
            decision.start_smoke_test.as_ref(),
        ),
    );
    let mut status = decision.status;
    if held_for_restore {
        restore::hold_status(&mut status, restore.as_ref());
    }
    status.name = stage.name.clone();
    status.signing_key_id = secrets.signing_key_id().map(str::to_owned);
    status.database_engine = Some(instance.spec.database.engine);
    status.restore = restore;
    status.backups = backups::backup_status(
        view.before.and_then(|b| b.backups.as_ref()),
        names,
        &view.observed.jobs,
        &view.observed.pods,
    );
    Ok(StagePlan {
        resources,
        jobs,
        status,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;
    use crate::api::{MessengerInstance, ReleaseStatus, RestorePhase, StageRestore, StageStatus};
    use crate::desired::keys::keys_secret;
    use crate::names::StageNames;
    use crate::observe::{InstanceObservation, StageObservation};
    use crate::plan::keys::{Keys, prerequisites};

    const NOW: i64 = 1_800_000_000;

    fn satellite() -> MessengerInstance {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/satellite.yaml"),
        )
        .unwrap();
        let mut instance =
            crate::render::parse_instance(&text, Path::new("satellite.yaml")).unwrap();
        instance.metadata.uid = Some("uid-1".into());
        instance
    }

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    /// The beta stage's observation with its keys Secret present.
    fn with_keys() -> StageObservation {
        let names = StageNames::new("klinikum", "beta");
        StageObservation {
            keys_secret: Some(keys_secret(
                &names,
                "messenger",
                &StageSecrets::placeholders(),
            )),
            ..StageObservation::default()
        }
    }

    /// Plans the beta stage alone (production removed) from an observation.
    fn plan_beta(instance: &MessengerInstance, observed: StageObservation) -> InstancePlan {
        let mut instance = instance.clone();
        instance.spec.stages.truncate(1);
        let observation = InstanceObservation {
            stages: vec![observed],
            objects: Vec::new(),
        };
        let validated = crate::validate::validate(&instance.spec).unwrap();
        let views = StageView::all(&instance, &validated, "messenger", &observation);
        let keys = views
            .iter()
            .map(
                |view| match prerequisites(view, StageSecrets::placeholders) {
                    Ok(Keys::Existing(secrets) | Keys::Mint(secrets)) => Ok(secrets),
                    Err(stall) => Err(stall),
                },
            )
            .collect();
        plan_instance(&views, keys, now())
    }

    fn synapse_of(plan: &InstancePlan) -> StatefulSet {
        let child = plan
            .children
            .iter()
            .find(|c| c.describe() == "StatefulSet/klinikum-beta-synapse")
            .unwrap();
        child.object.clone().try_parse().unwrap()
    }

    fn finished(job: &Child, complete: bool, message: &str) -> (Job, Pod) {
        let mut job: Job = job.object.clone().try_parse().unwrap();
        job.metadata.uid = Some("job-uid".into());
        job.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: if complete { "Complete" } else { "Failed" }.into(),
                status: "True".into(),
                last_transition_time: Some(Time(now())),
                ..JobCondition::default()
            }]),
            completion_time: complete.then(|| Time(now())),
            ..JobStatus::default()
        });
        let pod = Pod {
            metadata: kube::api::ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: "job-uid".into(),
                    ..OwnerReference::default()
                }]),
                ..Default::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            message: Some(message.into()),
                            finished_at: Some(Time(now())),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        (job, pod)
    }

    #[test]
    fn a_new_stage_mints_keys_and_a_lost_identity_stalls() {
        let instance = satellite();
        let observation = InstanceObservation {
            stages: vec![StageObservation::default(); 2],
            objects: Vec::new(),
        };
        let validated = crate::validate::validate(&instance.spec).unwrap();
        let views = StageView::all(&instance, &validated, "messenger", &observation);
        assert!(matches!(
            prerequisites(&views[0], StageSecrets::placeholders),
            Ok(Keys::Mint(_))
        ));
        let lost = InstanceObservation {
            stages: vec![
                StageObservation {
                    synapse: Some(StatefulSet::default()),
                    ..StageObservation::default()
                };
                2
            ],
            objects: Vec::new(),
        };
        let views = StageView::all(&instance, &validated, "messenger", &lost);
        let stall = prerequisites(&views[0], StageSecrets::placeholders).unwrap_err();
        assert_eq!(stall.reason, StallReason::KeysMissing);
        let plan = plan_beta(&instance, lost.stages[0].clone());
        assert_eq!(plan.stages[0].status.phase, StagePhase::Blocked);
        assert_eq!(plan.held_stages(), vec!["beta"]);
        assert!(plan.children.is_empty());
    }

    #[test]
    fn a_declared_restore_runs_its_job_with_synapse_held_then_releases_it() {
        let mut instance = satellite();
        instance.spec.stages[0].restore = Some(StageRestore {
            snapshot: "1a2b3c4d".into(),
        });
        let plan = plan_beta(&instance, with_keys());
        assert_eq!(plan.stages[0].stall, None);
        assert_eq!(
            plan.stages[0].status.restore.as_ref().unwrap().phase,
            RestorePhase::Pending
        );
        assert_eq!(plan.jobs.len(), 1, "the restore Job");
        assert_eq!(synapse_of(&plan).spec.unwrap().replicas, Some(0));

        let (job, pod) = finished(
            &plan.jobs[0],
            true,
            r#"{"result":"success","snapshot":"1a2b3c4d"}"#,
        );
        let mut previous = instance.clone();
        previous.status = Some(crate::api::MessengerInstanceStatus {
            stages: plan.stages.iter().map(|s| s.status.clone()).collect(),
            ..Default::default()
        });
        let observed = StageObservation {
            jobs: vec![job],
            pods: vec![pod],
            ..with_keys()
        };
        let done = plan_beta(&previous, observed);
        let restore = done.stages[0].status.restore.clone().unwrap();
        assert_eq!(restore.phase, RestorePhase::Succeeded);
        assert_eq!(restore.snapshot.as_deref(), Some("1a2b3c4d"));
        assert!(done.jobs.is_empty());
        assert_ne!(synapse_of(&done).spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn an_upgrade_backs_up_first_and_deploys_once_the_backup_job_completed() {
        let instance = satellite();
        let previous_release = ReleaseStatus {
            synapse: Some("v1.160.0".into()),
            element_web: Some("v1.12.3".into()),
        };
        let mut running = instance.clone();
        running.status = Some(crate::api::MessengerInstanceStatus {
            stages: vec![StageStatus {
                name: "beta".into(),
                phase: StagePhase::Ready,
                release: Some(previous_release),
                signing_key_id: StageSecrets::placeholders()
                    .signing_key_id()
                    .map(Into::into),
                ..StageStatus::default()
            }],
            ..Default::default()
        });
        let old_synapse = {
            let plan = plan_beta(&instance, with_keys());
            let mut set = synapse_of(&plan);
            let containers = &mut set
                .spec
                .as_mut()
                .unwrap()
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers;
            let image = containers[0]
                .image
                .clone()
                .unwrap()
                .replace("v1.163.2", "v1.160.0");
            containers[0].image = Some(image);
            set
        };
        let observed = StageObservation {
            synapse: Some(old_synapse),
            ..with_keys()
        };
        let plan = plan_beta(&running, observed.clone());
        let backup = plan
            .jobs
            .iter()
            .find(|job| job.describe().contains("backup"))
            .expect("a pre-upgrade backup Job");
        assert!(
            backup.object.metadata.owner_references.is_some(),
            "rollout Jobs go with the instance"
        );
        assert!(
            synapse_of(&plan)
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .containers[0]
                .image
                .as_deref()
                .unwrap()
                .ends_with("v1.160.0"),
            "the old release runs until the backup is done"
        );

        let (job, pod) = finished(backup, true, r#"{"result":"success","snapshot":"5e6f"}"#);
        let observed = StageObservation {
            jobs: vec![job],
            pods: vec![pod],
            ..observed
        };
        let next = plan_beta(&running, observed);
        assert!(
            next.jobs
                .iter()
                .all(|job| !job.describe().contains("backup"))
        );
        assert!(
            synapse_of(&next)
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .containers[0]
                .image
                .as_deref()
                .unwrap()
                .ends_with("v1.163.2"),
            "the new release deploys after the backup"
        );
    }

    #[test]
    fn a_stage_without_its_database_engine_stalls_with_the_engine_named() {
        let mut instance = satellite();
        instance.spec.database.engine = crate::api::DatabaseEngine::CloudnativePg;
        let plan = plan_beta(&instance, StageObservation::default());
        let stall = plan.stages[0].stall.clone().unwrap();
        assert_eq!(stall.reason, StallReason::InvalidSpec);
    }
}
