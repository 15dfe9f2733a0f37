//! Lease-based leader election, so that only one replica reconciles.

use futures::Future;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::info;

use crate::controller::{LeaderElection, RunError};
use crate::names::MANAGER;

/// A held Lease. Dropping it closes the channel, which releases the Lease.
pub struct Lease {
    state: watch::Receiver<bool>,
}

impl Lease {
    /// Completes when this replica stops being the leader.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut state = self.state.clone();
        async move {
            loop {
                if !*state.borrow_and_update() {
                    return;
                }
                if state.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits until this replica holds the Lease; `None` if `shutdown` came first.
pub async fn acquire(
    client: &Client,
    election: &LeaderElection,
    identity: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<Option<Lease>, RunError> {
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(identity)
        .with_field_manager(MANAGER)
        .build()
        .await
        .map_err(|error| RunError::LeaderElection(error.to_string()))?;
    let (mut state, _task) = manager.watch().await;
    info!(lease = %election.lease_name, namespace = %election.namespace, "waiting to become the leader");
    let became_leader = async {
        while !*state.borrow_and_update() {
            if state.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    tokio::select! {
        leader = became_leader => {
            if !leader {
                return Err(RunError::LeaderElection("the lease manager stopped".into()));
            }
            info!("became the leader");
            Ok(Some(Lease { state }))
        }
        () = shutdown => Ok(None),
    }
}
