//! `caduceus render` shows what the controller writes: for an instance with
//! no prior state, the objects the operator creates on a real API server
//! equal the rendered ones, object by object (rendered with the keys the
//! operator minted, since those are random).

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use caduceus::api::MessengerInstance;
use caduceus::desired::keys::StageSecrets;
use caduceus::names::{DESIRED_HASH_ANNOTATION, INSTANCE_LABEL, StageNames};
use caduceus::observe::stores::child_kinds;
use caduceus::render;
use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};

const WAIT: Duration = Duration::from_secs(30);

/// Every object labelled with the instance, by `Kind/name`.
async fn live_objects(
    admin: &Client,
    namespace: &str,
    instance: &str,
) -> BTreeMap<String, DynamicObject> {
    let mut objects = BTreeMap::new();
    for resource in child_kinds(false) {
        let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), namespace, &resource);
        let list = api
            .list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}={instance}")))
            .await
            .expect("listing the operator's objects");
        for object in list.items {
            objects.insert(format!("{}/{}", resource.kind, object.name_any()), object);
        }
    }
    objects
}

fn hash(object: &DynamicObject) -> Option<&String> {
    object.annotations().get(DESIRED_HASH_ANNOTATION)
}

async fn render_matches(file: &str, prefix: &str) {
    let admin = admin().await;
    let namespace = namespace(&admin, prefix).await;
    let operator = Operator::start(&namespace).await;
    let applied = apply_instance(&admin, &example(file, &namespace)).await;
    let api = Api::<MessengerInstance>::namespaced(admin.clone(), &namespace);
    let name = applied.name_any();
    // The status is written after every child was applied.
    let stored = eventually(&format!("the status of {name}"), WAIT, || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let current = api.get(&name).await.expect("reading the instance");
            let observed = current.status.as_ref().and_then(|s| s.observed_generation);
            (observed == current.metadata.generation).then_some(current)
        }
    })
    .await;

    let secrets = Api::<Secret>::namespaced(admin.clone(), &namespace);
    let mut minted = Vec::new();
    for stage in &stored.spec.stages {
        let keys = secrets
            .get(&StageNames::new(&name, &stage.name).keys_secret())
            .await
            .expect("the operator created the stage's keys");
        minted.push(StageSecrets::from_secret(&keys).expect("complete keys"));
    }
    let next = Cell::new(0);
    let rendered = render::desired_from_nothing(&stored, || {
        let index = next.get();
        next.set(index + 1);
        minted[index].clone()
    })
    .expect("the example renders");

    let live = live_objects(&admin, &namespace, &name).await;
    let rendered: BTreeMap<String, _> = rendered
        .into_iter()
        .map(|child| (child.describe(), child))
        .collect();
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        live.keys().collect::<Vec<_>>(),
        "render and the controller write the same objects"
    );
    for (key, child) in &rendered {
        let object = &live[key];
        assert_eq!(hash(&child.object), hash(object), "{key}: same content");
        assert_eq!(
            child.object.owner_references(),
            object.owner_references(),
            "{key}: same owner"
        );
    }
    operator.stop().await;
}

#[tokio::test]
async fn render_equals_what_the_controller_applies_for_a_new_instance() {
    render_matches("umessenger.yaml", "render-cloud").await;
}

#[tokio::test]
async fn render_equals_what_the_controller_applies_for_a_new_satellite_with_backups() {
    render_matches("satellite.yaml", "render-satellite").await;
}
