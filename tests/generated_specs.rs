//! No spec makes validate, plan or build panic: generated instances, valid
//! or not, go through everything `render` runs (the controller's pipeline on
//! an empty observation).

mod common;

use caduceus::api::MessengerInstance;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn no_generated_spec_makes_the_operator_panic(value in common::generated::instance_value()) {
        // A spec the typed API refuses never reaches the operator.
        if let Ok(instance) = serde_json::from_value::<MessengerInstance>(value) {
            let outcome = caduceus::render::render_objects(&instance, None);
            // Accepted or refused with a message; never a panic, never an
            // empty refusal.
            if let Err(error) = outcome {
                prop_assert!(!error.to_string().trim().is_empty());
            }
        }
    }
}

#[test]
fn the_generator_makes_both_accepted_and_refused_specs() {
    let outcomes: Vec<bool> = common::generated::generated_instances(64)
        .into_iter()
        .filter_map(|(_, typed)| typed)
        .map(|instance| caduceus::render::render_objects(&instance, None).is_ok())
        .collect();
    assert!(
        outcomes.iter().any(|ok| *ok),
        "some generated specs are accepted"
    );
    assert!(
        outcomes.iter().any(|ok| !ok),
        "some generated specs are refused"
    );
}
