//! What every reconcile shares: the client, the caches, metrics, the Event
//! recorder, the clock and the per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use tracing::warn;

use crate::api::MessengerInstance;
use crate::apply::Applier;
use crate::metrics::Metrics;
use crate::observe::stores::ChildStores;

/// The time source; tests move it to shorten soak times and windows.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

pub struct Context {
    /// Only `apply` writes with it (through `applier`).
    client: Client,
    pub stores: ChildStores,
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<String, u32>>,
    /// Key names of the Secrets the specs refer to (`observe::referenced`);
    /// `None` where nothing watches them, and then nothing is checked.
    pub referenced_secrets: Option<Store<Secret>>,
}

/// The first retry delay after a failed reconcile; it doubles per failure.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Context {
    pub fn new(
        client: Client,
        stores: ChildStores,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        reporter: Reporter,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            stores,
            metrics,
            clock,
            failures: Mutex::default(),
            referenced_secrets: None,
        }
    }

    /// Checks referenced Secrets against this key-only cache.
    pub fn with_referenced_secrets(mut self, store: Store<Secret>) -> Self {
        self.referenced_secrets = Some(store);
        self
    }

    /// The one writer of a reconcile.
    pub fn applier(&self) -> Applier<'_> {
        Applier::new(&self.client, &self.metrics)
    }

    /// Now, truncated to whole seconds as the API stores times.
    pub fn now(&self) -> Time {
        let now = self.clock.now();
        Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
    }

    /// Publishes an Event on the instance; a failure to do so is logged, not
    /// fatal.
    pub async fn publish(
        &self,
        instance: &MessengerInstance,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        match self
            .recorder
            .publish(&event, &instance.object_ref(&()))
            .await
        {
            Ok(()) => self.metrics.api_write("create", "Event"),
            Err(error) => warn!(%error, reason, "could not publish an Event"),
        }
    }

    /// The delay before retrying `key` after one more failure: exponential,
    /// capped.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock");
        let count = failures.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        let factor = 2u32.saturating_pow(count.saturating_sub(1).min(16));
        BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_backoff(&self, key: &str) {
        self.failures.lock().expect("backoff lock").remove(key);
    }
}
