//! Generated instances: the umessenger example with its values drawn from
//! realistic and hostile choices (huge durations, zero sizes, unknown time
//! zones and releases, duplicate names), for tests that no spec makes the
//! operator panic and that accepted specs make children the API accepts.

use caduceus::api::MessengerInstance;
use proptest::prelude::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

fn duration() -> impl Strategy<Value = String> {
    // Mostly sound, so that enough specs are accepted to check their children.
    prop_oneof![
        12 => (1u64..400, prop::sample::select(vec!["h", "d", "w"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        1 => Just("0h".to_owned()),
        1 => Just("999999999999999y".to_owned()),
        1 => Just("36500d".to_owned()),
        1 => Just("1 day".to_owned()),
        1 => (0u64..100_000, prop::sample::select(vec!["ms", "s", "m", "h", "d", "w", "y"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
    ]
}

fn size() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "20Gi", "20Gi", "50Gi", "500Mi", "1.5Ti", "20Gi", "0Gi", "lots",
    ])
    .prop_map(str::to_owned)
}

fn release() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "v1.163.2", "v1.160.0", "v1.163.2", "v1.90.0", "v1.80.0", "v1.999.0",
    ])
    .prop_map(str::to_owned)
}

fn window() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(1u8..14, 0..3),
        prop::sample::select(vec!["Mon", "Tue", "Sun"]),
        prop::sample::select(vec!["02:00", "23:59", "00:00"]),
        duration(),
        prop::sample::select(vec!["Europe/Berlin", "UTC", "America/New_York", "Europe/Berlin", "Europe/Mainz"]),
    )
        .prop_map(|(months, day, start, duration, zone)| {
            json!({"months": months, "days": [day], "start": start, "duration": duration, "timeZone": zone})
        })
}

/// The JSON of a generated instance.
pub fn instance_value() -> impl Strategy<Value = Value> {
    (
        (release(), release(), any::<bool>()),
        (size(), size()),
        (duration(), duration(), duration()),
        prop::collection::vec(window(), 0..2),
        (1usize..4, prop::bool::weighted(0.1)),
        prop::sample::select(vec!["10.1.2.0/24", "0.0.0.0/0", "10.0.0.1"]),
        prop::sample::select(vec!["managed", "managed", "managed", "external"]),
    )
        .prop_map(
            |((train, pin, acknowledge), (database, media), (session, retention, soak), windows, (stages, shared_name), admin, engine)| {
                let stages: Vec<Value> = (0..stages)
                    .map(|index| {
                        let mut stage = json!({
                            "name": format!("s{index}"),
                            "serverName": if shared_name { "messenger.example.org".to_owned() } else { format!("s{index}.example.org") },
                            "homeserver": {"retention": {"defaultMaxLifetime": retention}},
                        });
                        if index > 0 {
                            stage["release"] = json!({"synapse": pin, "acknowledgeUnlisted": acknowledge});
                            stage["promotion"] = json!({"from": format!("s{}", index - 1), "soak": soak, "windows": windows});
                        }
                        stage
                    })
                    .collect();
                let mut database = json!({"engine": engine, "storage": database});
                if engine == "external" {
                    database["external"] = json!({"host": "pg.example.org", "database": "synapse", "user": "synapse", "passwordSecretRef": {"name": "pg", "key": "password"}});
                }
                json!({
                    "apiVersion": "caduceus.dev/v1alpha1",
                    "kind": "MessengerInstance",
                    "metadata": {"name": "generated", "namespace": "messenger"},
                    "spec": {
                        "release": {"synapse": train, "elementWeb": "v1.12.3", "acknowledgeUnlisted": acknowledge},
                        "homeserver": {"sessionLifetime": session},
                        "database": database,
                        "media": {"storage": media},
                        "stages": stages,
                        "access": {"ingress": {"className": "nginx", "tlsSecretName": "messenger-tls"}, "adminSourceRanges": [admin]},
                    },
                })
            },
        )
}

/// `count` generated instances, the same on every run.
pub fn generated_instances(count: usize) -> Vec<(Value, Option<MessengerInstance>)> {
    let mut runner = TestRunner::deterministic();
    let strategy = instance_value();
    (0..count)
        .map(|_| {
            let value = strategy.new_tree(&mut runner).expect("a value").current();
            let typed = serde_json::from_value(value.clone()).ok();
            (value, typed)
        })
        .collect()
}
