//! Prometheus metrics, served on `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::StagePhase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    verb: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    namespace: String,
    instance: String,
    stage: String,
    phase: String,
    synapse: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    api_writes: Family<WriteLabels, Counter>,
    stage_phase: Family<StageLabels, Gauge>,
    // The label set currently exported per stage, so a phase change removes
    // the old series instead of leaving a stale 1 behind.
    stage_series: Mutex<std::collections::HashMap<(String, String, String), StageLabels>>,
    backup_last_success: Family<BackupLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    namespace: String,
    instance: String,
    stage: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("caduceus");
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let api_writes = Family::<WriteLabels, Counter>::default();
        let stage_phase = Family::<StageLabels, Gauge>::default();
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile of a MessengerInstance takes",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "api_writes",
            "Mutating API requests the operator sent, by verb and kind",
            api_writes.clone(),
        );
        registry.register(
            "stage_phase",
            "1 for each stage's current phase and Synapse release",
            stage_phase.clone(),
        );
        let backup_last_success = Family::<BackupLabels, Gauge>::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When each stage's last successful backup finished (Unix time); alert when it is too old",
            backup_last_success.clone(),
        );
        Self {
            backup_last_success,
            registry,
            reconcile_duration,
            reconcile_errors,
            api_writes,
            stage_phase,
            stage_series: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn api_write(&self, verb: &str, kind: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                verb: verb.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// Records a stage's phase and release, replacing its previous series.
    pub fn stage(
        &self,
        namespace: &str,
        instance: &str,
        stage: &str,
        phase: StagePhase,
        synapse: &str,
    ) {
        let labels = StageLabels {
            namespace: namespace.into(),
            instance: instance.into(),
            stage: stage.into(),
            phase: phase.to_string(),
            synapse: synapse.into(),
        };
        let key = (namespace.to_owned(), instance.to_owned(), stage.to_owned());
        let mut series = self.stage_series.lock().expect("metrics lock");
        if let Some(previous) = series.insert(key, labels.clone())
            && previous != labels
        {
            self.stage_phase.remove(&previous);
        }
        self.stage_phase.get_or_create(&labels).set(1);
    }

    /// Drops the series of an instance that is gone.
    pub fn forget_instance(&self, namespace: &str, instance: &str) {
        self.forget_backups(namespace, instance);
        let mut series = self.stage_series.lock().expect("metrics lock");
        series.retain(|(ns, name, _), labels| {
            let keep = !(ns == namespace && name == instance);
            if !keep {
                self.stage_phase.remove(labels);
            }
            keep
        });
    }

    /// Records when a stage's last successful backup finished.
    pub fn backup_succeeded(
        &self,
        namespace: &str,
        instance: &str,
        stage: &str,
        unix_seconds: i64,
    ) {
        let labels = BackupLabels {
            namespace: namespace.into(),
            instance: instance.into(),
            stage: stage.into(),
        };
        self.backup_last_success
            .get_or_create(&labels)
            .set(unix_seconds);
    }

    /// Drops the backup series of a gone instance. Its stages are the ones
    /// with a phase series.
    fn forget_backups(&self, namespace: &str, instance: &str) {
        let series = self.stage_series.lock().expect("metrics lock");
        for (ns, name, stage) in series.keys() {
            if ns == namespace && name == instance {
                self.backup_last_success.remove(&BackupLabels {
                    namespace: ns.clone(),
                    instance: name.clone(),
                    stage: stage.clone(),
                });
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_change_replaces_the_series() {
        let metrics = Metrics::default();
        metrics.stage("ns", "i", "beta", StagePhase::Provisioning, "v1");
        metrics.stage("ns", "i", "beta", StagePhase::Ready, "v1");
        let text = metrics.render();
        assert!(text.contains("phase=\"Ready\""));
        assert!(!text.contains("phase=\"Provisioning\""));
        metrics.api_write("apply", "StatefulSet");
        assert!(
            metrics
                .render()
                .contains("caduceus_api_writes_total{verb=\"apply\",kind=\"StatefulSet\"} 1")
        );
    }

    #[test]
    fn the_last_backup_success_is_a_gauge_per_stage() {
        let metrics = Metrics::default();
        metrics.stage("ns", "i", "beta", StagePhase::Ready, "v1");
        metrics.backup_succeeded("ns", "i", "beta", 1_767_225_600);
        let series = "caduceus_backup_last_success_timestamp_seconds{namespace=\"ns\",instance=\"i\",stage=\"beta\"} 1767225600";
        assert!(metrics.render().contains(series));
        metrics.forget_instance("ns", "i");
        assert!(!metrics.render().contains(series));
    }
}
