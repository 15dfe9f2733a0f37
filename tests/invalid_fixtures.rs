//! `caduceus render`, the offline check, refuses every invalid fixture with
//! the message the API server or the operator gives (the control-plane test
//! `invalid_instances_are_refused_where_the_fixture_says` checks those).

mod common;

use common::fixtures::invalid_fixtures;

#[test]
fn render_refuses_every_invalid_fixture_with_its_message() {
    let fixtures = invalid_fixtures();
    assert!(fixtures.len() >= 40, "the invalid fixtures are present");
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let outcome = caduceus::render::load_instance(&fixture.path)
            .and_then(|instance| caduceus::render::render_objects(&instance, None).map(|_| ()));
        match outcome {
            Ok(()) => failures.push(format!("{}: render accepted it", fixture.path.display())),
            Err(error) => {
                let message = error.to_string();
                if !message.contains(&fixture.render_message) {
                    failures.push(format!(
                        "{}: expected {:?} in {message:?}",
                        fixture.path.display(),
                        fixture.render_message
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
