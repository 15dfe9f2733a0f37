//! The CRD's admission rules (OpenAPI and CEL), evaluated offline, so that
//! `caduceus render` refuses a spec with the very message the API server
//! would give.

use kube::core::cel::validate_cel;

use super::MessengerInstance;

/// The offline CEL evaluator's note for a rule it cannot run (the API
/// server's two-variable comprehensions); such rules are checked in Rust
/// below instead.
const UNSUPPORTED: &str = "which this kube-cel build does not support";

/// The admission rule messages a spec violates, if any.
pub fn admission_errors(instance: &MessengerInstance) -> Vec<String> {
    let mut errors: Vec<String> = match validate_cel(instance) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .to_string()
            .lines()
            .filter(|line| line.starts_with("  - ") && !line.contains(UNSUPPORTED))
            .map(|line| line.trim_start_matches("  - ").to_owned())
            .collect(),
    };
    for error in &mut errors {
        if let Some(detail) = naming_detail(instance, error) {
            error.push_str(&detail);
        }
    }
    let stages = &instance.spec.stages;
    // The API server names the first such stage (messageExpression); so
    // does this.
    let out_of_order = stages.iter().enumerate().find(|(index, stage)| {
        stage.promotion.as_ref().is_some_and(|p| {
            !stages[..*index]
                .iter()
                .any(|earlier| earlier.name == p.from)
        })
    });
    if let Some((_, stage)) = out_of_order {
        errors.push(format!(
            "spec.stages: stages[{}].promotion.from must name a stage listed earlier in spec.stages (for example production promotes from beta, so beta comes first); a stage cannot promote from itself or from a later stage, so promotions form no cycle",
            stage.name
        ));
    }
    errors
}

/// Which stage breaks a rule whose CRD message cannot say (a
/// messageExpression over the stage list exceeds the API server's CEL cost
/// budget): added offline, after the message the API server gives.
fn naming_detail(instance: &MessengerInstance, error: &str) -> Option<String> {
    let stages = &instance.spec.stages;
    let name = instance.metadata.name.as_deref().unwrap_or_default();
    if error.contains("stages[].serverName must differ") {
        let stage = stages.iter().enumerate().find(|(index, stage)| {
            stages[..*index]
                .iter()
                .any(|earlier| earlier.server_name == stage.server_name)
        })?;
        let first = stages
            .iter()
            .find(|earlier| earlier.server_name == stage.1.server_name)?;
        return Some(format!(
            " (stages {} and {} both use {})",
            first.name, stage.1.name, stage.1.server_name
        ));
    }
    if error.contains("metadata.name and a stage name together") {
        let stage = stages.iter().find(|stage| {
            name.len() + stage.name.len() > super::spec::MAX_INSTANCE_AND_STAGE_NAME
        })?;
        return Some(format!(
            " (metadata.name {name} and stage {} have {} characters)",
            stage.name,
            name.len() + stage.name.len()
        ));
    }
    if error.contains("promotion.from must name another stage of spec.stages") {
        let (stage, from) = stages.iter().find_map(|stage| {
            let from = &stage.promotion.as_ref()?.from;
            (!stages.iter().any(|other| &other.name == from)).then_some((&stage.name, from))
        })?;
        return Some(format!(
            " (stage {stage} names {from}, which is not a stage)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(yaml: &str) -> MessengerInstance {
        serde_saphyr::from_str(yaml).expect("test YAML parses")
    }

    const HEAD: &str = "apiVersion: caduceus.dev/v1alpha1\nkind: MessengerInstance\nmetadata: {name: um, namespace: m}\nspec:\n  release: {synapse: v1.163.2, elementWeb: v1.12.3}\n";

    #[test]
    fn a_valid_spec_passes() {
        let ok = instance(&format!(
            "{HEAD}  locations: [{{name: mainz}}]\n  stages:\n  - {{name: beta, serverName: beta.example.org}}\n  - {{name: production, serverName: example.org, location: mainz, promotion: {{from: beta, soak: 168h}}}}\n"
        ));
        assert_eq!(admission_errors(&ok), Vec::<String>::new());
    }

    #[test]
    fn each_rule_has_its_message() {
        let cases = [
            (
                "  stages:\n  - {name: beta, serverName: a.example.org}\n  - {name: beta, serverName: b.example.org}\n",
                "stage names must be unique",
            ),
            (
                "  stages:\n  - {name: production, serverName: a.example.org, promotion: {from: beta}}\n",
                "promotion.from must name another stage",
            ),
            (
                "  stages:\n  - {name: production, serverName: a.example.org, promotion: {from: beta}}\n  - {name: beta, serverName: b.example.org}\n",
                "promotion.from must name a stage listed earlier",
            ),
            (
                "  stages:\n  - {name: beta, serverName: a.example.org, location: nowhere}\n",
                "must name an entry of spec.locations",
            ),
            (
                "  stages:\n  - {name: Beta, serverName: a.example.org}\n",
                "a stage name must be a DNS label",
            ),
            (
                "  stages:\n  - {name: beta, serverName: 'not a host'}\n",
                "DNS host name",
            ),
            (
                "  homeserver: {sessionLifetime: 90 days}\n  stages:\n  - {name: beta, serverName: a.example.org}\n",
                "must be a duration",
            ),
            (
                "  database: {storage: lots}\n  stages:\n  - {name: beta, serverName: a.example.org}\n",
                "must be a storage size",
            ),
        ];
        for (spec, message) in cases {
            let errors = admission_errors(&instance(&format!("{HEAD}{spec}")));
            assert!(
                errors.iter().any(|e| e.contains(message)),
                "expected {message:?} for\n{spec}\ngot {errors:?}"
            );
        }
    }
}
