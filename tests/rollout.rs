//! Stage-by-stage rollouts on the real control plane, with simulated
//! readiness and a clock the test moves: beta takes a release, production
//! follows after the soak and only inside its window; a downgrade below the
//! schema floor is refused; a failing smoke test rolls back; and an operator
//! restarted between every pair of steps still does each step exactly once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use caduceus::api::{MessengerInstance, StagePhase, StageStatus};
use caduceus::context::Clock;
use common::*;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A clock that stands still until the test moves it.
struct TestClock(AtomicI64);

impl TestClock {
    fn at(text: &str) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(
            text.parse::<Timestamp>().unwrap().as_second(),
        )))
    }
    fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_second(self.0.load(Ordering::SeqCst)).unwrap()
    }
}

fn instance_yaml(namespace: &str, train: &str, production_pin: Option<&str>) -> MessengerInstance {
    let pin = production_pin.map_or(String::new(), |v| {
        format!("      release: {{synapse: {v}}}\n")
    });
    let text = format!(
        "apiVersion: caduceus.dev/v1alpha1
kind: MessengerInstance
metadata: {{name: rollout, namespace: {namespace}}}
spec:
  release: {{synapse: {train}, elementWeb: v1.12.3}}
  clients: {{elementWeb: {{enabled: false}}}}
  backups:
    schedule: '30 1 * * *'
    repository: {{pvc: {{size: 1Gi}}}}
    passwordSecretRef: {{name: backup-password}}
  stages:
    - name: beta
      serverName: beta.example.org
    - name: production
      serverName: example.org
{pin}      promotion:
        from: beta
        soak: 1h
        windows: [{{start: '03:00', duration: 1h, timeZone: Europe/Berlin}}]
"
    );
    serde_saphyr::from_str(&text).unwrap()
}

async fn stage(admin: &Client, namespace: &str, name: &str) -> StageStatus {
    let instance = Api::<MessengerInstance>::namespaced(admin.clone(), namespace)
        .get("rollout")
        .await
        .unwrap();
    instance
        .status
        .and_then(|s| s.stages.into_iter().find(|s| s.name == name))
        .unwrap_or_default()
}

async fn wait_phase(admin: &Client, namespace: &str, name: &str, phase: StagePhase) -> StageStatus {
    eventually(&format!("{name} {phase}"), WAIT, || async {
        let status = stage(admin, namespace, name).await;
        (status.phase == phase).then_some(status)
    })
    .await
}

/// Triggers a reconcile, as a watch event would after the clock moved.
async fn nudge(admin: &Client, namespace: &str) {
    let value = Timestamp::now().to_string();
    Api::<MessengerInstance>::namespaced(admin.clone(), namespace)
        .patch(
            "rollout",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"test/nudge": value}}})),
        )
        .await
        .unwrap();
}

/// Plays the Job controller: reports a Job finished.
async fn finish_job(admin: &Client, namespace: &str, name: &str, succeeded: bool) {
    let jobs = Api::<Job>::namespaced(admin.clone(), namespace);
    eventually(&format!("Job {name}"), WAIT, || async {
        jobs.get_opt(name).await.unwrap()
    })
    .await;
    let now = Timestamp::now().to_string();
    let status = if succeeded {
        json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now}]}})
    } else {
        json!({"status": {"startTime": now, "failed": 1, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "the smoke test failed", "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "the smoke test failed", "lastTransitionTime": now}]}})
    };
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("finishing Job {name}: {e}"));
}

async fn synapse_image(admin: &Client, namespace: &str, stage: &str) -> String {
    let set = Api::<StatefulSet>::namespaced(admin.clone(), namespace)
        .get(&format!("rollout-{stage}-synapse"))
        .await
        .unwrap();
    set.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

async fn setup(admin: &Client, prefix: &str, clock: Arc<TestClock>) -> (String, Operator) {
    let namespace = namespace(admin, prefix).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "backup-password"}, "stringData": {"password": "correct horse"}}))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let operator = Operator::start_with_clock(&namespace, clock).await;
    apply_instance(admin, &instance_yaml(&namespace, "v1.160.0", None)).await;
    for stage in ["beta", "production"] {
        mark_stage_ready(admin, &namespace, &format!("rollout-{stage}")).await;
    }
    wait_phase(admin, &namespace, "beta", StagePhase::Ready).await;
    wait_phase(admin, &namespace, "production", StagePhase::Ready).await;
    (namespace, operator)
}

/// Restarts the operator, as a crash or an upgrade of the operator would.
async fn restart(operator: Operator, namespace: &str, clock: &Arc<TestClock>) -> Operator {
    operator.stop().await;
    Operator::start_with_clock(namespace, clock.clone()).await
}

#[tokio::test]
async fn beta_then_production_inside_its_window_each_step_once_across_restarts() {
    let admin = admin().await;
    // Monday 2026-11-30, 00:00 UTC (01:00 in Berlin).
    let clock = TestClock::at("2026-11-30T00:00:00Z");
    let (namespace, mut operator) = setup(&admin, "rollout", clock.clone()).await;
    let audit = AuditLog::open();
    let mark = audit.mark();

    apply_instance(&admin, &instance_yaml(&namespace, "v1.163.2", None)).await;
    // Beta: backup, deploy, verify — with a restart between every step.
    wait_phase(&admin, &namespace, "beta", StagePhase::BackingUp).await;
    let production = wait_phase(&admin, &namespace, "production", StagePhase::Waiting).await;
    assert!(
        production
            .message
            .unwrap()
            .contains("beta must run v1.163.2 Ready first")
    );
    operator = restart(operator, &namespace, &clock).await;
    finish_job(&admin, &namespace, "rollout-beta-backup-v1-163-2", true).await;
    wait_phase(&admin, &namespace, "beta", StagePhase::Upgrading).await;
    assert!(
        synapse_image(&admin, &namespace, "beta")
            .await
            .ends_with(":v1.163.2")
    );
    operator = restart(operator, &namespace, &clock).await;
    mark_ready(&admin, &namespace, "rollout-beta-synapse").await;
    wait_phase(&admin, &namespace, "beta", StagePhase::Verifying).await;
    operator = restart(operator, &namespace, &clock).await;
    finish_job(&admin, &namespace, "rollout-beta-smoke-v1-163-2", true).await;
    let beta = wait_phase(&admin, &namespace, "beta", StagePhase::Ready).await;
    assert_eq!(beta.release.unwrap().synapse.as_deref(), Some("v1.163.2"));
    assert_eq!(beta.history.len(), 1);

    // Production waits for the soak, then for its window.
    operator = restart(operator, &namespace, &clock).await;
    nudge(&admin, &namespace).await;
    let waiting = eventually("the soak message", WAIT, || async {
        let status = stage(&admin, &namespace, "production").await;
        status
            .message
            .filter(|m| m.contains("Ready for"))
            .map(|m| (status.phase, m))
    })
    .await;
    assert_eq!(waiting.0, StagePhase::Waiting);
    assert!(
        waiting.1.starts_with("beta has run v1.163.2 Ready for"),
        "{}",
        waiting.1
    );
    // 01:30 UTC: the 1h soak is over, but the window is 03:00 in Berlin.
    clock.advance(90 * 60);
    nudge(&admin, &namespace).await;
    let message = eventually("the window message", WAIT, || async {
        stage(&admin, &namespace, "production")
            .await
            .message
            .filter(|m| m.contains("next window"))
    })
    .await;
    assert!(message.contains("next window"), "{message}");
    assert!(
        synapse_image(&admin, &namespace, "production")
            .await
            .ends_with(":v1.160.0")
    );
    // 02:30 UTC is 03:30 in Berlin: inside the window.
    clock.advance(3600);
    nudge(&admin, &namespace).await;
    wait_phase(&admin, &namespace, "production", StagePhase::BackingUp).await;
    operator = restart(operator, &namespace, &clock).await;
    finish_job(
        &admin,
        &namespace,
        "rollout-production-backup-v1-163-2",
        true,
    )
    .await;
    wait_phase(&admin, &namespace, "production", StagePhase::Upgrading).await;
    operator = restart(operator, &namespace, &clock).await;
    mark_ready(&admin, &namespace, "rollout-production-synapse").await;
    wait_phase(&admin, &namespace, "production", StagePhase::Verifying).await;
    operator = restart(operator, &namespace, &clock).await;
    finish_job(
        &admin,
        &namespace,
        "rollout-production-smoke-v1-163-2",
        true,
    )
    .await;
    let production = wait_phase(&admin, &namespace, "production", StagePhase::Ready).await;
    assert_eq!(
        production.release.unwrap().synapse.as_deref(),
        Some("v1.163.2")
    );
    assert_eq!(production.history.len(), 1);
    operator.stop().await;

    // Every Job was created exactly once, despite six restarts.
    let creates: Vec<String> = audit
        .operator_writes_since(mark, &namespace)
        .into_iter()
        .filter(|w| w.starts_with("create jobs/"))
        .collect();
    assert_eq!(
        creates,
        vec![
            "create jobs/rollout-beta-backup-v1-163-2",
            "create jobs/rollout-beta-smoke-v1-163-2",
            "create jobs/rollout-production-backup-v1-163-2",
            "create jobs/rollout-production-smoke-v1-163-2",
        ]
    );
    let jobs = Api::<Job>::namespaced(admin.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(jobs.items.len(), 4);
}

#[tokio::test]
async fn a_downgrade_below_the_schema_floor_is_refused() {
    let admin = admin().await;
    let clock = TestClock::at("2026-11-30T02:30:00Z");
    let (namespace, operator) = setup(&admin, "downgrade", clock.clone()).await;
    apply_instance(
        &admin,
        &instance_yaml(&namespace, "v1.160.0", Some("v1.98.0")),
    )
    .await;
    let production = wait_phase(&admin, &namespace, "production", StagePhase::Blocked).await;
    let message = production.message.unwrap();
    assert!(
        message.contains("v1.98.0 cannot run on this database"),
        "{message}"
    );
    assert!(
        message.contains("restore the stage from the backup"),
        "{message}"
    );
    assert!(
        synapse_image(&admin, &namespace, "production")
            .await
            .ends_with(":v1.160.0")
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_failing_smoke_test_rolls_back() {
    let admin = admin().await;
    let clock = TestClock::at("2026-11-30T00:00:00Z");
    let (namespace, operator) = setup(&admin, "smoke", clock.clone()).await;
    apply_instance(&admin, &instance_yaml(&namespace, "v1.163.2", None)).await;
    finish_job(&admin, &namespace, "rollout-beta-backup-v1-163-2", true).await;
    wait_phase(&admin, &namespace, "beta", StagePhase::Upgrading).await;
    mark_ready(&admin, &namespace, "rollout-beta-synapse").await;
    finish_job(&admin, &namespace, "rollout-beta-smoke-v1-163-2", false).await;
    let beta = wait_phase(&admin, &namespace, "beta", StagePhase::Failed).await;
    assert!(beta.message.unwrap().contains("rolled back to v1.160.0"));
    assert_eq!(beta.history.last().unwrap().result, "RolledBack");
    eventually("the old image back", WAIT, || async {
        synapse_image(&admin, &namespace, "beta")
            .await
            .ends_with(":v1.160.0")
            .then_some(())
    })
    .await;
    // Production never moves to a release beta could not run.
    let production = stage(&admin, &namespace, "production").await;
    assert_eq!(
        production.release.unwrap().synapse.as_deref(),
        Some("v1.160.0")
    );
    operator.stop().await;
}
