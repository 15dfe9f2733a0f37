//! The rollout of one stage as a pure state machine over the spec, the
//! stage's status and what is observed of its children:
//!
//! gates (schema, pause, soak of the `from` stage, window) → pre-upgrade
//! backup Job → new release deployed → rollout ready → smoke-test Job →
//! Ready, recorded in history.
//!
//! Every step is decided from recorded status and observed objects whose
//! names are derived from the target release, so a restart of the operator
//! at any point resumes without repeating a finished step or skipping one.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    Release, ReleaseStatus, RolloutRecord, RolloutStatus, RolloutStep, StagePhase, StageStatus,
};
use crate::validate::windows::ValidatedPromotion;

use super::schema;
use super::windows::{WindowState, human, window_state};

/// The most rollouts kept in a stage's history.
pub const HISTORY_LIMIT: usize = 10;

/// What is observed of a Job the rollout runs (read by `observe::jobs`).
pub use crate::observe::jobs::JobState;

/// What is observed of the stage's Synapse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The Synapse release of the StatefulSet's pod template, if it exists.
    pub release: Option<String>,
    /// `Ok` when every replica of the current template is ready, else what
    /// it waits for.
    pub readiness: Result<(), String>,
}

/// The promotion source: the stage's name and its status.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    pub name: &'a str,
    pub status: Option<&'a StageStatus>,
}

/// Everything the machine decides from.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The release the spec asks for.
    pub desired: Release,
    /// This stage's recorded status.
    pub previous: Option<&'a StageStatus>,
    /// The stage's promotion, validated.
    pub promotion: Option<&'a ValidatedPromotion>,
    pub source: Option<Source<'a>>,
    pub paused: bool,
    /// Whether a pre-upgrade backup is taken (the instance has backups).
    pub backups: bool,
    /// The pre-upgrade backup Job of the target, if one is wanted.
    pub backup_job: JobState,
    /// The smoke-test Job of the target.
    pub smoke_job: JobState,
    pub workload: Workload,
    pub now: Timestamp,
}

/// What the machine decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The release the workloads run now.
    pub deploy: Release,
    /// The stage's next status (phase, message, release, rollout, history).
    pub status: StageStatus,
    /// Start the pre-upgrade backup Job of this release.
    pub start_backup: Option<Release>,
    /// Start the smoke-test Job of this release.
    pub start_smoke_test: Option<Release>,
}

fn to_status(release: &Release) -> ReleaseStatus {
    ReleaseStatus {
        synapse: Some(release.synapse.to_string()),
        element_web: Some(release.element_web.to_string()),
    }
}

fn from_status(status: &ReleaseStatus, fallback: &Release) -> Release {
    Release {
        synapse: status
            .synapse
            .as_deref()
            .map_or_else(|| fallback.synapse.clone(), Into::into),
        element_web: status
            .element_web
            .as_deref()
            .map_or_else(|| fallback.element_web.clone(), Into::into),
        acknowledge_unlisted: false,
    }
}

fn time(at: Timestamp) -> Time {
    Time(Timestamp::from_second(at.as_second()).unwrap_or(at))
}

/// Decides the stage's next step.
pub fn decide(facts: &Facts<'_>) -> Decision {
    let previous = facts.previous.cloned().unwrap_or_default();
    let Some(running) = previous
        .release
        .as_ref()
        .map(|r| from_status(r, &facts.desired))
    else {
        return provision(facts, previous);
    };
    let rollout = previous
        .rollout
        .clone()
        .filter(|r| from_status(&r.target, &facts.desired) == facts.desired);
    // A rollout towards another release than the spec now wants is abandoned
    // only while nothing of it ran; once deployed, the database may have
    // migrated, so the release it deployed counts as the running one.
    let running = match &previous.rollout {
        Some(other)
            if rollout.is_none()
                && matches!(other.step, RolloutStep::Deploy | RolloutStep::Verify) =>
        {
            from_status(&other.target, &facts.desired)
        }
        _ => running,
    };
    if facts.desired == running && rollout.is_none() {
        return steady(facts, previous, running);
    }
    let target = facts.desired.clone();
    if previous
        .failed_target
        .as_ref()
        .map(|t| from_status(t, &target))
        == Some(target.clone())
        && facts.smoke_job != JobState::Absent
    {
        return hold(
            facts,
            previous,
            running.clone(),
            StagePhase::Failed,
            format!(
                "the smoke test of {} failed and the stage was rolled back to {}; fix the cause and delete the failed smoke-test Job to retry, or change the release",
                target.synapse, running.synapse
            ),
        );
    }
    let step = rollout.as_ref().map_or(RolloutStep::Gates, |r| r.step);
    if facts.paused && step == RolloutStep::Gates {
        let message = format!(
            "paused; {} is wanted, {} keeps running",
            target.synapse, running.synapse
        );
        return hold(facts, previous, running, StagePhase::Waiting, message);
    }
    match step {
        RolloutStep::Gates => gates(facts, previous, running, target),
        RolloutStep::Backup => backup(facts, previous, running, target, rollout),
        RolloutStep::Deploy => deploy(facts, previous, running, target, rollout),
        RolloutStep::Verify => verify(facts, previous, running, target, rollout),
    }
}

/// A stage that never ran a release: run the desired one.
fn provision(facts: &Facts<'_>, mut status: StageStatus) -> Decision {
    let desired = facts.desired.clone();
    if let Some(refused) = schema_refusal(&status, &desired) {
        status.phase = StagePhase::Blocked;
        status.message = Some(refused);
        return Decision {
            deploy: desired,
            status,
            start_backup: None,
            start_smoke_test: None,
        };
    }
    status.schema_compat_version = merged_compat(&status, &desired);
    status.target = None;
    status.rollout = None;
    match (&facts.workload.readiness, facts.workload.release.as_deref()) {
        (Ok(()), Some(release)) if release == desired.synapse.as_str() => {
            status.phase = StagePhase::Ready;
            status.release = Some(to_status(&desired));
            status.ready_since = Some(time(facts.now));
            status.message = Some(format!("Synapse {} is ready", desired.synapse));
        }
        (readiness, _) => {
            status.phase = StagePhase::Provisioning;
            status.message = Some(format!(
                "waiting for Synapse {}: {}",
                desired.synapse,
                readiness
                    .clone()
                    .err()
                    .unwrap_or_else(|| "its pods to run the release".into())
            ));
        }
    }
    Decision {
        deploy: desired,
        status,
        start_backup: None,
        start_smoke_test: None,
    }
}

/// Nothing to roll out: report readiness of the running release.
fn steady(facts: &Facts<'_>, mut status: StageStatus, running: Release) -> Decision {
    status.target = None;
    status.rollout = None;
    status.release = Some(to_status(&running));
    match &facts.workload.readiness {
        Ok(()) => {
            if status.phase != StagePhase::Ready {
                status.ready_since = Some(time(facts.now));
            }
            status.phase = StagePhase::Ready;
            status.message = Some(format!("Synapse {} is ready", running.synapse));
        }
        Err(waiting) => {
            status.phase = if status.ready_since.is_some() {
                StagePhase::Failed
            } else {
                StagePhase::Provisioning
            };
            status.ready_since = None;
            status.message = Some(format!(
                "Synapse {} is not ready: {waiting}",
                running.synapse
            ));
        }
    }
    Decision {
        deploy: running,
        status,
        start_backup: None,
        start_smoke_test: None,
    }
}

/// Keeps the running release with a phase and message.
fn hold(
    facts: &Facts<'_>,
    mut status: StageStatus,
    running: Release,
    phase: StagePhase,
    message: String,
) -> Decision {
    let _ = facts;
    status.phase = phase;
    status.message = Some(message);
    status.target = Some(to_status(&facts.desired)).filter(|t| Some(t) != status.release.as_ref());
    Decision {
        deploy: running,
        status,
        start_backup: None,
        start_smoke_test: None,
    }
}

/// Why `target` cannot run on this stage's database, if it cannot.
pub fn schema_refusal(status: &StageStatus, target: &Release) -> Option<String> {
    let compat = status.schema_compat_version?;
    let (needed, _) = schema::versions(target.synapse.as_str())?;
    (needed < compat).then(|| {
        format!(
            "{} cannot run on this database: it knows schema version {needed}, but the database requires at least {compat} (a newer Synapse has migrated it). \
             Choose {} or newer, or restore the stage from the backup taken before that upgrade",
            target.synapse,
            schema::oldest_supporting(compat).unwrap_or("a newer release"),
        )
    })
}

fn merged_compat(status: &StageStatus, release: &Release) -> Option<u32> {
    let known = schema::versions(release.synapse.as_str()).map(|(_, compat)| compat);
    match (status.schema_compat_version, known) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn gates(
    facts: &Facts<'_>,
    mut status: StageStatus,
    running: Release,
    target: Release,
) -> Decision {
    if let Some(refused) = schema_refusal(&status, &target) {
        return hold(facts, status, running, StagePhase::Blocked, refused);
    }
    if let (Some(promotion), Some(source)) = (facts.promotion, facts.source.as_ref())
        && let Some(waiting) = soak_gate(promotion.soak, source, &target, facts.now)
    {
        return hold(facts, status, running, StagePhase::Waiting, waiting);
    }
    if let Some(promotion) = facts.promotion {
        match window_state(&promotion.windows, facts.now) {
            WindowState::Closed { opens, described } => {
                let wait = human(facts.now.duration_until(opens));
                let message = format!(
                    "{} is ready to roll out; next window {described} (in {wait})",
                    target.synapse
                );
                return hold(facts, status, running, StagePhase::Waiting, message);
            }
            WindowState::Open { .. } => {}
        }
    }
    let started = Some(time(facts.now));
    if facts.backups {
        status.rollout = Some(RolloutStatus {
            target: to_status(&target),
            step: RolloutStep::Backup,
            started,
        });
        backup(
            facts,
            status.clone(),
            running,
            target,
            status.rollout.clone(),
        )
    } else {
        status.rollout = Some(RolloutStatus {
            target: to_status(&target),
            step: RolloutStep::Deploy,
            started,
        });
        deploy(
            facts,
            status.clone(),
            running,
            target,
            status.rollout.clone(),
        )
    }
}

/// Waits until the promotion source has run `target` Ready for the soak time.
pub fn soak_gate(
    soak: SignedDuration,
    source: &Source<'_>,
    target: &Release,
    now: Timestamp,
) -> Option<String> {
    let Some(status) = source.status else {
        return Some(format!(
            "{} has no status yet; it must run {} first",
            source.name, target.synapse
        ));
    };
    let source_release = status.release.as_ref().and_then(|r| r.synapse.as_deref());
    if source_release != Some(target.synapse.as_str()) || status.phase != StagePhase::Ready {
        return Some(format!(
            "{} must run {} Ready first (it runs {} and is {})",
            source.name,
            target.synapse,
            source_release.unwrap_or("nothing yet"),
            status.phase
        ));
    }
    let since = status.ready_since.as_ref().map_or(now, |t| t.0);
    let ran = since.duration_until(now);
    (ran < soak).then(|| {
        format!(
            "{} has run {} Ready for {} of {}; ready to roll out at {}",
            source.name,
            target.synapse,
            human(ran),
            human(soak),
            since
                .checked_add(soak)
                .unwrap_or(now)
                .strftime("%Y-%m-%d %H:%M UTC")
        )
    })
}

fn backup(
    facts: &Facts<'_>,
    mut status: StageStatus,
    running: Release,
    target: Release,
    rollout: Option<RolloutStatus>,
) -> Decision {
    status.rollout = rollout;
    status.target = Some(to_status(&target));
    match &facts.backup_job {
        JobState::Succeeded => {
            if let Some(rollout) = status.rollout.as_mut() {
                rollout.step = RolloutStep::Deploy;
            }
            let rollout = status.rollout.clone();
            deploy(facts, status, running, target, rollout)
        }
        JobState::Failed(why) => {
            status.phase = StagePhase::Blocked;
            status.message = Some(format!(
                "the pre-upgrade backup for {} failed: {why}. {} keeps running; fix the cause and delete the backup Job to retry",
                target.synapse, running.synapse
            ));
            Decision {
                deploy: running,
                status,
                start_backup: None,
                start_smoke_test: None,
            }
        }
        JobState::Absent | JobState::Running => {
            status.phase = StagePhase::BackingUp;
            status.message = Some(format!(
                "taking the pre-upgrade backup before {}",
                target.synapse
            ));
            Decision {
                deploy: running,
                start_backup: (facts.backup_job == JobState::Absent).then(|| target.clone()),
                status,
                start_smoke_test: None,
            }
        }
    }
}

fn deploy(
    facts: &Facts<'_>,
    mut status: StageStatus,
    running: Release,
    target: Release,
    rollout: Option<RolloutStatus>,
) -> Decision {
    status.rollout = rollout;
    status.target = Some(to_status(&target));
    // From here on the new Synapse may migrate the database.
    status.schema_compat_version = merged_compat(&status, &target);
    let on_target = facts.workload.release.as_deref() == Some(target.synapse.as_str());
    if on_target && facts.workload.readiness.is_ok() {
        if let Some(rollout) = status.rollout.as_mut() {
            rollout.step = RolloutStep::Verify;
        }
        let rollout = status.rollout.clone();
        return verify(facts, status, running, target, rollout);
    }
    status.phase = StagePhase::Upgrading;
    let waiting = match (&facts.workload.readiness, on_target) {
        (Err(waiting), true) => waiting.clone(),
        _ => format!("its pods to move from {}", running.synapse),
    };
    status.message = Some(format!(
        "rolling out {}: waiting for {waiting}",
        target.synapse
    ));
    Decision {
        deploy: target,
        status,
        start_backup: None,
        start_smoke_test: None,
    }
}

fn verify(
    facts: &Facts<'_>,
    mut status: StageStatus,
    running: Release,
    target: Release,
    rollout: Option<RolloutStatus>,
) -> Decision {
    status.rollout = rollout;
    status.target = Some(to_status(&target));
    let started = status.rollout.as_ref().and_then(|r| r.started.clone());
    match &facts.smoke_job {
        JobState::Succeeded => {
            record(
                &mut status,
                &running,
                &target,
                started,
                facts.now,
                "Succeeded",
                None,
            );
            status.phase = StagePhase::Ready;
            status.release = Some(to_status(&target));
            status.ready_since = Some(time(facts.now));
            status.target = None;
            status.rollout = None;
            status.failed_target = None;
            status.message = Some(format!(
                "Synapse {} is ready and passed its smoke test",
                target.synapse
            ));
            Decision {
                deploy: target,
                status,
                start_backup: None,
                start_smoke_test: None,
            }
        }
        JobState::Failed(why) => {
            let compat = status.schema_compat_version.unwrap_or_default();
            let rollback_allowed = schema::versions(running.synapse.as_str())
                .is_some_and(|(known, _)| known >= compat);
            if rollback_allowed {
                let message = format!(
                    "the smoke test of {} failed ({why}); rolled back to {}, which this database still supports",
                    target.synapse, running.synapse
                );
                record(
                    &mut status,
                    &running,
                    &target,
                    started,
                    facts.now,
                    "RolledBack",
                    Some(message.clone()),
                );
                status.phase = StagePhase::Failed;
                status.rollout = None;
                status.failed_target = Some(to_status(&target));
                status.message = Some(message);
                Decision {
                    deploy: running,
                    status,
                    start_backup: None,
                    start_smoke_test: None,
                }
            } else {
                let message = format!(
                    "the smoke test of {} failed ({why}) and {} cannot run on the migrated database; \
                     {} keeps running. Investigate it, or restore the stage from the pre-upgrade backup to return to {}",
                    target.synapse, running.synapse, target.synapse, running.synapse
                );
                status.phase = StagePhase::Blocked;
                status.message = Some(message);
                Decision {
                    deploy: target,
                    status,
                    start_backup: None,
                    start_smoke_test: None,
                }
            }
        }
        JobState::Absent | JobState::Running => {
            status.phase = StagePhase::Verifying;
            status.message = Some(format!("running the smoke test against {}", target.synapse));
            Decision {
                deploy: target.clone(),
                start_smoke_test: (facts.smoke_job == JobState::Absent).then_some(target),
                status,
                start_backup: None,
            }
        }
    }
}

fn record(
    status: &mut StageStatus,
    from: &Release,
    to: &Release,
    started: Option<Time>,
    now: Timestamp,
    result: &str,
    message: Option<String>,
) {
    status.history.push(RolloutRecord {
        from: Some(from.synapse.to_string()),
        to: to.synapse.to_string(),
        started,
        finished: Some(time(now)),
        result: result.into(),
        message,
    });
    let excess = status.history.len().saturating_sub(HISTORY_LIMIT);
    status.history.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Duration, Promotion, Version, Weekday, Window};

    const OLD: &str = "v1.160.0";
    const NEW: &str = "v1.163.2";

    fn release(synapse: &str) -> Release {
        Release {
            synapse: Version(synapse.into()),
            element_web: Version("v1.12.3".into()),
            acknowledge_unlisted: false,
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn ready(synapse: &str, since: &str) -> StageStatus {
        StageStatus {
            name: "stage".into(),
            phase: StagePhase::Ready,
            release: Some(to_status(&release(synapse))),
            ready_since: Some(time(at(since))),
            schema_compat_version: Some(84),
            ..StageStatus::default()
        }
    }

    fn workload(synapse: &str, is_ready: bool) -> Workload {
        Workload {
            release: Some(synapse.into()),
            readiness: if is_ready {
                Ok(())
            } else {
                Err("0/1 pods ready".into())
            },
        }
    }

    fn facts<'a>(previous: Option<&'a StageStatus>, desired: &str, now: &str) -> Facts<'a> {
        Facts {
            desired: release(desired),
            previous,
            promotion: None,
            source: None,
            paused: false,
            backups: true,
            backup_job: JobState::Absent,
            smoke_job: JobState::Absent,
            workload: workload(OLD, true),
            now: at(now),
        }
    }

    /// A promotion as `validate` parses it.
    fn validated(promotion: Promotion) -> ValidatedPromotion {
        crate::validate::windows::promotion(&promotion).expect("a valid promotion")
    }

    fn tuesday_window() -> ValidatedPromotion {
        validated(Promotion {
            from: "beta".into(),
            soak: Some(Duration("7d".into())),
            windows: vec![Window {
                days: vec![Weekday::Tue],
                months: vec![],
                start: "02:00".into(),
                duration: Duration("3h".into()),
                time_zone: "Europe/Berlin".into(),
            }],
        })
    }

    #[test]
    fn a_new_stage_runs_the_desired_release_once_ready() {
        let mut f = facts(None, NEW, "2026-11-27T00:00:00Z");
        f.workload = workload(NEW, false);
        let decision = decide(&f);
        assert_eq!(decision.deploy, release(NEW));
        assert_eq!(decision.status.phase, StagePhase::Provisioning);
        assert_eq!(decision.start_backup, None);
        f.workload = workload(NEW, true);
        let decision = decide(&f);
        assert_eq!(decision.status.phase, StagePhase::Ready);
        assert_eq!(decision.status.release, Some(to_status(&release(NEW))));
        assert_eq!(decision.status.schema_compat_version, Some(84));
    }

    #[test]
    fn production_waits_for_the_soak_then_the_window() {
        let production = ready(OLD, "2026-10-01T00:00:00Z");
        let beta = ready(NEW, "2026-11-20T00:00:00Z");
        let promotion = tuesday_window();
        let mut f = facts(Some(&production), NEW, "2026-11-24T20:00:00Z");
        f.promotion = Some(&promotion);
        f.source = Some(Source {
            name: "beta",
            status: Some(&beta),
        });
        let decision = decide(&f);
        assert_eq!(decision.deploy, release(OLD));
        assert_eq!(decision.status.phase, StagePhase::Waiting);
        assert_eq!(
            decision.status.message.as_deref(),
            Some(
                "beta has run v1.163.2 Ready for 4d20h of 7d; ready to roll out at 2026-11-27 00:00 UTC"
            )
        );
        // Soaked, but Friday is outside the Tuesday window.
        f.now = at("2026-11-27T12:00:00Z");
        let decision = decide(&f);
        assert_eq!(decision.status.phase, StagePhase::Waiting);
        assert_eq!(
            decision.status.message.as_deref(),
            Some("v1.163.2 is ready to roll out; next window Tue 02:00 Europe/Berlin (in 3d13h)")
        );
        // Inside the window: the pre-upgrade backup starts.
        f.now = at("2026-12-01T01:30:00Z");
        let decision = decide(&f);
        assert_eq!(decision.status.phase, StagePhase::BackingUp);
        assert_eq!(decision.start_backup, Some(release(NEW)));
        assert_eq!(decision.deploy, release(OLD));
    }

    #[test]
    fn a_source_on_another_release_holds_the_stage() {
        let production = ready(OLD, "2026-10-01T00:00:00Z");
        let beta = ready(OLD, "2026-10-01T00:00:00Z");
        let promotion = validated(Promotion {
            from: "beta".into(),
            ..Promotion::default()
        });
        let mut f = facts(Some(&production), NEW, "2026-11-24T20:00:00Z");
        f.promotion = Some(&promotion);
        f.source = Some(Source {
            name: "beta",
            status: Some(&beta),
        });
        let decision = decide(&f);
        assert_eq!(decision.status.phase, StagePhase::Waiting);
        assert_eq!(
            decision.status.message.as_deref(),
            Some("beta must run v1.163.2 Ready first (it runs v1.160.0 and is Ready)")
        );
    }

    /// Walks a rollout step by step, feeding each decision back as status.
    #[test]
    fn a_rollout_backs_up_deploys_verifies_and_records_history() {
        let mut status = ready(OLD, "2026-10-01T00:00:00Z");
        let now = "2026-11-27T00:00:00Z";
        let step = |status: &StageStatus, backup: JobState, smoke: JobState, workload: Workload| {
            let mut f = facts(Some(status), NEW, now);
            f.backup_job = backup;
            f.smoke_job = smoke;
            f.workload = workload;
            decide(&f)
        };
        let d = step(
            &status,
            JobState::Absent,
            JobState::Absent,
            workload(OLD, true),
        );
        assert_eq!(
            (d.status.phase, d.start_backup.clone()),
            (StagePhase::BackingUp, Some(release(NEW)))
        );
        status = d.status;
        // A restart while the backup runs starts nothing again.
        let d = step(
            &status,
            JobState::Running,
            JobState::Absent,
            workload(OLD, true),
        );
        assert_eq!(
            (d.status.phase, d.start_backup.clone()),
            (StagePhase::BackingUp, None)
        );
        status = d.status;
        let d = step(
            &status,
            JobState::Succeeded,
            JobState::Absent,
            workload(OLD, true),
        );
        assert_eq!(
            (d.status.phase, d.deploy.clone()),
            (StagePhase::Upgrading, release(NEW))
        );
        status = d.status;
        let d = step(
            &status,
            JobState::Succeeded,
            JobState::Absent,
            workload(NEW, false),
        );
        assert_eq!(d.status.phase, StagePhase::Upgrading);
        status = d.status;
        let d = step(
            &status,
            JobState::Succeeded,
            JobState::Absent,
            workload(NEW, true),
        );
        assert_eq!(
            (d.status.phase, d.start_smoke_test.clone()),
            (StagePhase::Verifying, Some(release(NEW)))
        );
        status = d.status;
        let d = step(
            &status,
            JobState::Succeeded,
            JobState::Succeeded,
            workload(NEW, true),
        );
        assert_eq!(d.status.phase, StagePhase::Ready);
        assert_eq!(d.status.release, Some(to_status(&release(NEW))));
        assert_eq!(d.status.rollout, None);
        assert_eq!(d.status.history.len(), 1);
        assert_eq!(d.status.history[0].result, "Succeeded");
        assert_eq!(d.status.history[0].from.as_deref(), Some(OLD));
        // And then it is steady.
        let d = step(
            &d.status,
            JobState::Succeeded,
            JobState::Succeeded,
            workload(NEW, true),
        );
        assert_eq!(
            (d.status.phase, d.start_smoke_test),
            (StagePhase::Ready, None)
        );
    }

    #[test]
    fn a_failed_smoke_test_rolls_back_when_the_schema_allows_and_does_not_retry() {
        let mut status = ready(OLD, "2026-10-01T00:00:00Z");
        status.rollout = Some(RolloutStatus {
            target: to_status(&release(NEW)),
            step: RolloutStep::Verify,
            started: None,
        });
        let mut f = facts(Some(&status), NEW, "2026-11-27T00:00:00Z");
        f.smoke_job = JobState::Failed("could not read the message back".into());
        f.workload = workload(NEW, true);
        let d = decide(&f);
        assert_eq!(d.status.phase, StagePhase::Failed);
        assert_eq!(d.deploy, release(OLD));
        assert_eq!(d.status.failed_target, Some(to_status(&release(NEW))));
        assert_eq!(d.status.history.last().unwrap().result, "RolledBack");
        let status = d.status;
        let mut f = facts(Some(&status), NEW, "2026-11-27T00:01:00Z");
        f.smoke_job = JobState::Failed("could not read the message back".into());
        let d = decide(&f);
        assert_eq!(
            (d.status.phase, d.deploy.clone(), d.start_backup),
            (StagePhase::Failed, release(OLD), None)
        );
        assert!(
            d.status
                .message
                .unwrap()
                .contains("delete the failed smoke-test Job to retry")
        );
    }

    #[test]
    fn a_failed_smoke_test_blocks_when_the_old_release_cannot_run_on_the_migrated_database() {
        let mut status = ready("v1.98.0", "2026-10-01T00:00:00Z");
        status.schema_compat_version = Some(83);
        status.rollout = Some(RolloutStatus {
            target: to_status(&release(NEW)),
            step: RolloutStep::Deploy,
            started: None,
        });
        let mut f = facts(Some(&status), NEW, "2026-11-27T00:00:00Z");
        f.workload = workload(NEW, true);
        f.smoke_job = JobState::Failed("login failed".into());
        let d = decide(&f);
        assert_eq!(d.status.phase, StagePhase::Blocked);
        assert_eq!(d.deploy, release(NEW));
        assert!(
            d.status
                .message
                .unwrap()
                .contains("restore the stage from the pre-upgrade backup")
        );
    }

    #[test]
    fn a_downgrade_below_the_schema_floor_is_refused() {
        let status = ready(NEW, "2026-10-01T00:00:00Z");
        let d = decide(&facts(Some(&status), "v1.98.0", "2026-11-27T00:00:00Z"));
        assert_eq!(d.status.phase, StagePhase::Blocked);
        assert_eq!(d.deploy, release(NEW));
        let message = d.status.message.unwrap();
        assert!(
            message.contains("v1.98.0 cannot run on this database"),
            "{message}"
        );
        assert!(message.contains("v1.100.0 or newer"), "{message}");
        // A downgrade the schema allows proceeds.
        let d = decide(&facts(Some(&status), "v1.150.0", "2026-11-27T00:00:00Z"));
        assert_eq!(d.status.phase, StagePhase::BackingUp);
    }

    #[test]
    fn pause_and_a_failed_backup_keep_the_running_release() {
        let status = ready(OLD, "2026-10-01T00:00:00Z");
        let mut f = facts(Some(&status), NEW, "2026-11-27T00:00:00Z");
        f.paused = true;
        let d = decide(&f);
        assert_eq!(
            (d.status.phase, d.deploy.clone()),
            (StagePhase::Waiting, release(OLD))
        );
        let mut backing_up = status.clone();
        backing_up.rollout = Some(RolloutStatus {
            target: to_status(&release(NEW)),
            step: RolloutStep::Backup,
            started: None,
        });
        let mut f = facts(Some(&backing_up), NEW, "2026-11-27T00:00:00Z");
        f.backup_job = JobState::Failed("repository password is wrong".into());
        let d = decide(&f);
        assert_eq!(
            (d.status.phase, d.deploy),
            (StagePhase::Blocked, release(OLD))
        );
        assert!(
            d.status
                .message
                .unwrap()
                .contains("repository password is wrong")
        );
    }

    #[test]
    fn without_backups_a_rollout_goes_straight_to_deploying() {
        let status = ready(OLD, "2026-10-01T00:00:00Z");
        let mut f = facts(Some(&status), NEW, "2026-11-27T00:00:00Z");
        f.backups = false;
        let d = decide(&f);
        assert_eq!(
            (d.status.phase, d.deploy, d.start_backup),
            (StagePhase::Upgrading, release(NEW), None)
        );
    }
}
