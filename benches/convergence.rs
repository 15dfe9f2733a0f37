//! Convergence on the local control plane: from apply to every child present
//! for one instance, and for 200 instances; mutating requests while nothing
//! changes; resident memory of the operator process. Needs the control plane
//! (`hack/control-plane.sh start && source /tmp/caduceus-control-plane/env`).
//!
//!     cargo bench --bench convergence

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use caduceus::api::MessengerInstance;
use caduceus::desired::Child;
use caduceus::render;
use common::*;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};

const INSTANCES: usize = 200;

fn minimal(namespace: &str, name: &str) -> MessengerInstance {
    let mut instance = example("minimal.yaml", namespace);
    instance.metadata.name = Some(name.into());
    instance
}

/// The number of children of each kind one instance gets.
fn expected(instance: &MessengerInstance) -> BTreeMap<String, (kube::api::ApiResource, usize)> {
    let objects: Vec<Child> = render::render_objects(instance, None).expect("the example renders");
    let mut counts = BTreeMap::new();
    for child in objects {
        counts
            .entry(child.resource.kind.clone())
            .or_insert((child.resource.clone(), 0))
            .1 += 1;
    }
    counts
}

async fn present(
    admin: &Client,
    namespace: &str,
    expected: &BTreeMap<String, (kube::api::ApiResource, usize)>,
    instances: usize,
) -> bool {
    for (resource, count) in expected.values() {
        let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), namespace, resource);
        let listed = api
            .list_metadata(&ListParams::default().labels("app.kubernetes.io/managed-by=caduceus"))
            .await
            .expect("listing children");
        if listed.items.len() < count * instances {
            return false;
        }
    }
    true
}

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() {
    let admin = admin().await;
    let audit = AuditLog::open();

    let first = common::namespace(&admin, "bench-one").await;
    let namespace = first;
    let operator = Operator::start(&namespace).await;
    let one = minimal(&namespace, "one");
    let kinds = expected(&one);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    apply_instance(&admin, &one).await;
    eventually(
        "every child of one instance",
        Duration::from_secs(60),
        || async { present(&admin, &namespace, &kinds, 1).await.then_some(()) },
    )
    .await;
    println!(
        "one instance: apply to every child present: {} ms",
        started.elapsed().as_millis()
    );
    operator.stop().await;

    let namespace = common::namespace(&admin, "bench-many").await;
    let operator = Operator::start(&namespace).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    for index in 0..INSTANCES {
        apply_instance(&admin, &minimal(&namespace, &format!("i{index:03}"))).await;
    }
    let applied = started.elapsed();
    eventually(
        "every child of every instance",
        Duration::from_secs(300),
        || async {
            present(&admin, &namespace, &kinds, INSTANCES)
                .await
                .then_some(())
        },
    )
    .await;
    println!(
        "{INSTANCES} instances: applied in {} ms, every child present after {} ms",
        applied.as_millis(),
        started.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mark = audit.mark();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let writes = audit.operator_writes_since(mark, &namespace);
    println!(
        "mutating requests in 20 s of steady state with {INSTANCES} instances: {}",
        writes.len()
    );
    println!(
        "resident memory of the operator process (with the benchmark's own client): {:.1} MiB",
        resident_mib()
    );
    operator.stop().await;
}
