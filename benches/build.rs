//! How long building the desired objects takes (no cluster): a two-stage
//! instance's children, and one stage's homeserver configuration.
//!
//!     cargo bench --bench build

use std::hint::black_box;
use std::time::Instant;

use caduceus::api::MessengerInstance;
use caduceus::desired::{self, StageInputs, database, homeserver, keys::StageSecrets};
use caduceus::names::StageNames;

fn measure(what: &str, iterations: u32, mut run: impl FnMut()) {
    for _ in 0..iterations / 10 {
        run();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        run();
    }
    let each = started.elapsed() / iterations;
    println!(
        "{what}: {:.1} µs per run ({iterations} runs)",
        each.as_secs_f64() * 1e6
    );
}

fn main() {
    let text =
        std::fs::read_to_string("examples/umessenger.yaml").expect("run from the repository root");
    let mut instance: MessengerInstance =
        serde_saphyr::from_str(&text).expect("the example parses");
    instance.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    let secrets = StageSecrets::placeholders();
    let validated = caduceus::validate::validate(&instance.spec).expect("a valid example");
    measure(
        "desired objects of the two-stage umessenger instance",
        2000,
        || {
            let stages = validated
                .stages
                .iter()
                .map(|settings| {
                    let stage = settings.stage;
                    let inputs = StageInputs {
                        settings,
                        secrets: &secrets,
                        release: desired::desired_release(&instance, stage),
                    };
                    desired::build_stage(&instance, &inputs).expect("the example builds")
                })
                .collect();
            black_box(desired::children(&instance, stages));
        },
    );
    let settings = &validated.stages[1];
    let names = StageNames::new("umessenger", &settings.stage.name);
    let connection = database::connection(&instance.spec, &names);
    measure("homeserver configuration of one stage", 5000, || {
        black_box(homeserver::homeserver_files(
            settings,
            &connection,
            &secrets,
        ));
    });
}
