//! kube-runtime wiring: watches, the controller loop, error policy and
//! backoff, the health and metrics server, leader election and shutdown.

mod leader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::{Future, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use thiserror::Error;
use tracing::{Instrument, error, info, info_span, warn};

use crate::api::MessengerInstance;
use crate::context::{Clock, Context, SystemClock};
use crate::http;
use crate::metrics::Metrics;
use crate::names::INSTANCE_LABEL;
use crate::observe::referenced;
use crate::observe::stores::{ChildStores, child_kinds, cloudnative_pg_installed, watch_selector};
use crate::reconcile::{ReconcileError, reconcile};

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch only this namespace; every namespace if `None`.
    pub namespace: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; none if `None`.
    pub http_address: Option<SocketAddr>,
    /// Hold a Lease before reconciling, for deployments with more than one
    /// replica.
    pub leader_election: Option<LeaderElection>,
    /// The name Events are reported under (the pod name in a cluster).
    pub identity: String,
}

/// Where the leader election Lease lives.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("leader election: {0}")]
    LeaderElection(String),
    #[error("serving metrics and health: {0}")]
    Http(#[from] std::io::Error),
    #[error("leadership was lost; exiting so that another replica takes over")]
    LostLeadership,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

fn dynamic_api(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Runs the operator until `shutdown` completes (or leadership is lost).
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    run_with_clock(client, options, Arc::new(SystemClock), shutdown).await
}

/// `run` with a chosen clock, for tests.
pub async fn run_with_clock(
    client: Client,
    options: Options,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(address) = options.http_address {
        let listener = tokio::net::TcpListener::bind(address).await?;
        info!(%address, "serving /metrics, /healthz and /readyz");
        tokio::spawn(http::serve(listener, metrics.clone(), ready.clone()));
    }
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let _lease = match &options.leader_election {
        Some(election) => {
            // A standby replica is as it should be: ready, or a rolling
            // update of a Deployment with several replicas would wait forever
            // for a pod that cannot lead until the old leader goes.
            ready.store(true, Ordering::Relaxed);
            let lease =
                leader::acquire(&client, election, &options.identity, shutdown.clone()).await?;
            // Leading: ready again once the caches are synced.
            ready.store(false, Ordering::Relaxed);
            match lease {
                Some(lease) => Some(lease),
                None => return Ok(()),
            }
        }
        None => None,
    };
    let lost = _lease.as_ref().map(|lease| lease.lost());

    let namespace = options.namespace.as_deref();
    let mut controller = Controller::new(
        api::<MessengerInstance>(&client, namespace),
        // A consistent first listing: an instance created just before the
        // operator starts must not be missed by a stale watch cache.
        watcher::Config::default(),
    );
    let mut stores = Vec::new();
    let cloudnative_pg = cloudnative_pg_installed(&client).await;
    for resource in child_kinds(cloudnative_pg) {
        let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
        stores.push((resource.clone(), writer.as_reader()));
        let stream = watcher(
            dynamic_api(&client, namespace, &resource),
            watcher::Config::default().labels(&watch_selector(&resource)),
        )
        .default_backoff()
        .reflect(writer)
        .touched_objects();
        controller = controller.watches_stream_with(stream, owning_instance, resource);
    }
    let stores = ChildStores::new(stores);
    // Secrets the specs refer to (issue 12): key names only, see observe::referenced.
    let (referenced_secrets, referenced_changes) = referenced::watch(&client, namespace);
    let instances = controller.store();
    controller = controller.watches_stream(referenced_changes, move |secret| {
        referenced::instances_referencing(&secret, &instances)
    });
    let reporter = Reporter {
        controller: "caduceus".into(),
        instance: Some(options.identity.clone()),
    };
    let ctx = Arc::new(
        Context::new(client.clone(), stores.clone(), metrics, clock, reporter)
            .with_referenced_secrets(referenced_secrets),
    );

    {
        let stores = stores.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            stores.wait_ready().await;
            ready.store(true, Ordering::Relaxed);
            info!("caches synced");
        });
    }

    let stop = async move {
        match lost {
            Some(lost) => {
                tokio::select! {
                    () = shutdown => false,
                    () = lost => true,
                }
            }
            None => {
                shutdown.await;
                false
            }
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<bool>();
    let leadership_lost = Arc::new(AtomicBool::new(false));
    {
        let leadership_lost = leadership_lost.clone();
        tokio::spawn(async move {
            let lost = stop.await;
            leadership_lost.store(lost, Ordering::Relaxed);
            let _ = stop_tx.send(lost);
        });
    }
    info!(
        namespace = namespace.unwrap_or("<all>"),
        "starting the MessengerInstance controller"
    );
    controller
        .graceful_shutdown_on(async move {
            let _ = stop_rx.await;
        })
        .run(reconcile_measured, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "reconcile failed");
            }
        })
        .await;
    if leadership_lost.load(Ordering::Relaxed) {
        return Err(RunError::LostLeadership);
    }
    info!("stopped");
    Ok(())
}

/// The instance a child belongs to, from its instance label (retained data
/// has no owner reference, so labels are the common link).
fn owning_instance(object: DynamicObject) -> Option<ObjectRef<MessengerInstance>> {
    let name = object.labels().get(INSTANCE_LABEL)?;
    let namespace = object.namespace()?;
    Some(ObjectRef::new(name).within(&namespace))
}

async fn reconcile_measured(
    instance: Arc<MessengerInstance>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = info_span!("reconcile", namespace = %instance.namespace().unwrap_or_default(), instance = %instance.name_any());
    let started = Instant::now();
    let key = object_key(&instance);
    let result = reconcile(instance, ctx.clone()).instrument(span).await;
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.reset_backoff(&key);
    }
    result
}

fn object_key(instance: &MessengerInstance) -> String {
    format!(
        "{}/{}",
        instance.namespace().unwrap_or_default(),
        instance.name_any()
    )
}

/// Retries a failed reconcile with exponential backoff per instance.
fn error_policy(
    instance: Arc<MessengerInstance>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_error(error.reason());
    let delay = ctx.next_backoff(&object_key(&instance));
    error!(namespace = %instance.namespace().unwrap_or_default(), instance = %instance.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
