//! Where the pods of a stage run: each component's location (the stage's,
//! or its own under `stages[].placement`) becomes node selectors,
//! tolerations and affinity; replicas spread across the location's zones;
//! disruption budgets keep node drains from taking a component down by
//! surprise.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, PodSpec, Toleration, TopologySpreadConstraint};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{DatabaseEngine, Location, MessengerInstanceSpec, Stage};

use super::pod::stage_meta;
use crate::names::StageNames;

/// The node label whose values are zones when a location names none.
pub const DEFAULT_ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// The node label that tells nodes apart.
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";

/// A component of a stage that can be placed on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Synapse,
    Database,
    ElementWeb,
    Backups,
}

impl Component {
    /// The field under `stages[].placement` that places this component.
    pub fn field(self) -> &'static str {
        match self {
            Self::Synapse => "synapse",
            Self::Database => "database",
            Self::ElementWeb => "elementWeb",
            Self::Backups => "backups",
        }
    }

    /// Long-running workloads spread their replicas; Jobs do not.
    fn spreads(self) -> bool {
        !matches!(self, Self::Backups)
    }
}

/// The name of the location a component runs in: its own placement, else
/// the stage's location, else none (anywhere).
pub fn location_name(stage: &Stage, component: Component) -> Option<&str> {
    let own = stage
        .placement
        .as_ref()
        .and_then(|placement| match component {
            Component::Synapse => placement.synapse.as_deref(),
            Component::Database => placement.database.as_deref(),
            Component::ElementWeb => placement.element_web.as_deref(),
            Component::Backups => placement.backups.as_deref(),
        });
    own.or(stage.location.as_deref())
}

/// The location a component runs in. A name with no entry in
/// `spec.locations` is refused at admission; should one slip through, the
/// component runs unconstrained rather than not at all.
pub fn location<'a>(
    spec: &'a MessengerInstanceSpec,
    stage: &Stage,
    component: Component,
) -> Option<&'a Location> {
    let name = location_name(stage, component)?;
    spec.locations.iter().find(|location| location.name == name)
}

/// The scheduling fields of one component's pods.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodPlacement {
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

impl PodPlacement {
    /// Writes the placement into a pod spec, replacing what was there.
    pub fn apply_to(&self, pod: &mut PodSpec) {
        pod.node_selector = self.node_selector.clone();
        pod.tolerations = self.tolerations.clone();
        pod.affinity = self.affinity.clone();
        pod.topology_spread_constraints = self.topology_spread_constraints.clone();
    }
}

/// The placement of a component's pods. `selector` selects exactly the pods
/// of this component of this stage, so that spreading counts only them.
pub fn pod_placement(
    spec: &MessengerInstanceSpec,
    stage: &Stage,
    component: Component,
    selector: &BTreeMap<String, String>,
) -> PodPlacement {
    let location = location(spec, stage, component);
    let zone_key = location
        .and_then(|location| location.zone_key.as_deref())
        .unwrap_or(DEFAULT_ZONE_KEY);
    let spread = |key: &str| TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.to_owned(),
        // ScheduleAnyway: a satellite site with one zone, or nodes without
        // the zone label, must still run the stage; spreading is a
        // preference, never a reason to stay Pending.
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector.clone()),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    };
    PodPlacement {
        node_selector: location
            .map(|location| location.node_selector.clone())
            .filter(|selector| !selector.is_empty()),
        tolerations: location
            .map(|location| location.tolerations.clone())
            .filter(|tolerations| !tolerations.is_empty()),
        affinity: location.and_then(|location| location.affinity.clone()),
        // Zones first, then nodes within a zone, so two replicas in a
        // one-zone satellite still land on different nodes where possible.
        topology_spread_constraints: component
            .spreads()
            .then(|| vec![spread(zone_key), spread(HOSTNAME_KEY)]),
    }
}

/// How many of a component's pods a voluntary disruption (a node drain) may
/// take at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// At most this many pods down at a time.
    MaxUnavailable(i32),
}

/// The PodDisruptionBudget of a component's pods.
///
/// For a single-replica Synapse the choice is between two evils:
/// `minAvailable: 1` (or `maxUnavailable: 0`) makes every drain of its node
/// hang until someone deletes the pod by hand, which stalls cluster
/// upgrades and autoscaling forever; `maxUnavailable: 1` lets a drain move
/// Synapse with an outage of about a minute while clients retry. We take
/// `maxUnavailable: 1`: a drain moves Synapse like any other pod, and the
/// budget keeps its meaning where a component runs more replicas (Element
/// Web's two): never more than one down at a time. Unhealthy pods may
/// always be evicted, so a crash-looping pod never blocks a drain.
pub fn disruption_budget(
    names: &StageNames,
    namespace: &str,
    component: &str,
    budget: Budget,
) -> PodDisruptionBudget {
    let Budget::MaxUnavailable(max) = budget;
    PodDisruptionBudget {
        metadata: stage_meta(
            names,
            namespace,
            names.disruption_budget(component),
            component,
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector(component)),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// Warnings about a stage whose data would sit in another location than its
/// Synapse: such a stage stops when the link between the locations is down,
/// which a satellite site must survive. The controller reports them as a
/// condition; the spec stays valid, because a split may be deliberate.
pub fn placement_warnings(spec: &MessengerInstanceSpec, stage: &Stage) -> Vec<String> {
    let Some(synapse) = location_name(stage, Component::Synapse) else {
        // Synapse may run anywhere: nothing to compare against.
        return Vec::new();
    };
    let split = |component: Component, what: &str, consequence: &str| {
        let place = match location_name(stage, component) {
            Some(location) if location == synapse => return None,
            Some(location) => format!("in {location}"),
            None => "in any location".to_owned(),
        };
        Some(format!(
            "stages[{stage}]: Synapse runs in {synapse} but {what} {place}: {consequence}; place them \
             together (stages[{stage}].location, or placement.{field}: {synapse})",
            stage = stage.name,
            field = component.field(),
        ))
    };
    let mut warnings = Vec::new();
    // An external database is not the operator's to place.
    if spec.database.engine != DatabaseEngine::External {
        warnings.extend(split(
            Component::Database,
            "the database",
            "the stage stops whenever the link between them is down",
        ));
    }
    // The media volume is mounted by Synapse's pod, so it is always where
    // Synapse is; backups read it (and the database), so they belong there
    // too.
    if spec.backups.is_some() {
        warnings.extend(split(
            Component::Backups,
            "the backup Jobs",
            "they read Synapse's media volume, which cannot be mounted in another location, and fail \
             whenever the link is down",
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Placement, Repository, SecretRef};

    fn spec() -> MessengerInstanceSpec {
        MessengerInstanceSpec {
            locations: vec![
                Location {
                    name: "frankfurt".into(),
                    node_selector: BTreeMap::from([(
                        "topology.kubernetes.io/region".into(),
                        "eu-de".into(),
                    )]),
                    ..Location::default()
                },
                Location {
                    name: "mainz".into(),
                    node_selector: BTreeMap::from([(
                        "caduceus.dev/location".into(),
                        "mainz".into(),
                    )]),
                    tolerations: vec![Toleration {
                        key: Some("satellite".into()),
                        operator: Some("Exists".into()),
                        effect: Some("NoSchedule".into()),
                        ..Toleration::default()
                    }],
                    zone_key: Some("caduceus.dev/rack".into()),
                    ..Location::default()
                },
            ],
            ..MessengerInstanceSpec::default()
        }
    }

    fn stage(location: Option<&str>, placement: Option<Placement>) -> Stage {
        Stage {
            name: "production".into(),
            location: location.map(Into::into),
            placement,
            ..Stage::default()
        }
    }

    #[test]
    fn a_component_follows_its_stage_unless_placed_itself() {
        let stage = stage(
            Some("mainz"),
            Some(Placement {
                element_web: Some("frankfurt".into()),
                ..Placement::default()
            }),
        );
        assert_eq!(location_name(&stage, Component::Synapse), Some("mainz"));
        assert_eq!(location_name(&stage, Component::Database), Some("mainz"));
        assert_eq!(
            location_name(&stage, Component::ElementWeb),
            Some("frankfurt")
        );
    }

    #[test]
    fn a_satellite_placement_selects_tolerates_and_spreads_over_its_zone_key() {
        let spec = spec();
        let selector = StageNames::new("umessenger", "production").selector("synapse");
        let placement = pod_placement(
            &spec,
            &stage(Some("mainz"), None),
            Component::Synapse,
            &selector,
        );
        assert_eq!(
            placement.node_selector.unwrap()["caduceus.dev/location"],
            "mainz"
        );
        assert_eq!(
            placement.tolerations.unwrap()[0].key.as_deref(),
            Some("satellite")
        );
        let spread = placement.topology_spread_constraints.unwrap();
        assert_eq!(spread[0].topology_key, "caduceus.dev/rack");
        assert_eq!(spread[1].topology_key, HOSTNAME_KEY);
        assert!(
            spread
                .iter()
                .all(|c| c.when_unsatisfiable == "ScheduleAnyway" && c.max_skew == 1)
        );
        assert_eq!(
            spread[0]
                .label_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref(),
            Some(&selector)
        );
    }

    #[test]
    fn an_unplaced_stage_runs_anywhere_but_still_spreads_and_jobs_do_not() {
        let spec = spec();
        let selector = BTreeMap::new();
        let anywhere = pod_placement(&spec, &stage(None, None), Component::ElementWeb, &selector);
        assert_eq!(anywhere.node_selector, None);
        assert_eq!(anywhere.tolerations, None);
        assert_eq!(
            anywhere.topology_spread_constraints.unwrap()[0].topology_key,
            DEFAULT_ZONE_KEY
        );
        let job = pod_placement(
            &spec,
            &stage(Some("frankfurt"), None),
            Component::Backups,
            &selector,
        );
        assert!(job.node_selector.is_some());
        assert_eq!(job.topology_spread_constraints, None);
    }

    #[test]
    fn placement_replaces_what_the_pod_had() {
        let mut pod = PodSpec {
            node_selector: Some(BTreeMap::from([("old".into(), "x".into())])),
            ..PodSpec::default()
        };
        pod_placement(
            &spec(),
            &stage(None, None),
            Component::Synapse,
            &BTreeMap::new(),
        )
        .apply_to(&mut pod);
        assert_eq!(pod.node_selector, None);
    }

    #[test]
    fn a_single_synapse_may_be_drained() {
        let names = StageNames::new("umessenger", "production");
        let budget = disruption_budget(&names, "messenger", "synapse", Budget::MaxUnavailable(1));
        let spec = budget.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap(),
            names.selector("synapse")
        );
        assert_eq!(
            budget.metadata.name.as_deref(),
            Some("umessenger-production-synapse")
        );
    }

    #[test]
    fn data_away_from_synapse_is_warned_about() {
        let mut spec = spec();
        let together = stage(Some("mainz"), None);
        assert!(placement_warnings(&spec, &together).is_empty());

        let split = stage(
            Some("mainz"),
            Some(Placement {
                database: Some("frankfurt".into()),
                backups: Some("frankfurt".into()),
                ..Placement::default()
            }),
        );
        let warnings = placement_warnings(&spec, &split);
        assert_eq!(warnings.len(), 1, "no backups configured: {warnings:?}");
        assert_eq!(
            warnings[0],
            "stages[production]: Synapse runs in mainz but the database in frankfurt: the stage stops \
             whenever the link between them is down; place them together (stages[production].location, or \
             placement.database: mainz)"
        );

        spec.backups = Some(crate::api::Backups {
            schedule: "30 1 * * *".into(),
            keep: crate::api::Keep::default(),
            repository: Repository::default(),
            password_secret_ref: SecretRef { name: "pw".into() },
        });
        let warnings = placement_warnings(&spec, &split);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[1].starts_with(
            "stages[production]: Synapse runs in mainz but the backup Jobs in frankfurt"
        ));

        // An external database is not the operator's to place.
        spec.database.engine = DatabaseEngine::External;
        assert_eq!(placement_warnings(&spec, &split).len(), 1);

        // Synapse pinned, the database not: it may land anywhere.
        spec.database.engine = DatabaseEngine::Managed;
        let pinned = stage(
            None,
            Some(Placement {
                synapse: Some("mainz".into()),
                ..Placement::default()
            }),
        );
        let warnings = placement_warnings(&spec, &pinned);
        assert!(
            warnings[0].contains("but the database in any location"),
            "{warnings:?}"
        );

        // Synapse anywhere: no location to compare with.
        let floating = stage(
            None,
            Some(Placement {
                database: Some("frankfurt".into()),
                ..Placement::default()
            }),
        );
        assert!(placement_warnings(&spec, &floating).is_empty());
    }
}
