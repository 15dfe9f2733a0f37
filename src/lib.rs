//! Caduceus: a Kubernetes operator that runs Matrix messengers for hospitals.
//!
//! A reconcile (`reconcile`) is one pipeline whose data flows one way:
//!
//! - `observe`: every cache read for an instance -> plain values of what exists;
//!   `observe::jobs` is the one reader of Job outcomes.
//! - `validate`: the rules the schema cannot express.
//! - `plan`: pure decisions per concern (keys, rollout, restore, backups,
//!   pruning, finalizers) from the spec and the observation.
//! - `desired`: pure builders from the spec and the decisions to objects.
//! - `pipeline`: the pure middle, plan then desired for every stage; `render`
//!   runs it on an empty observation, so it shows what the controller applies.
//! - `apply`: the one writer (apply, create-once, delete, status, finalizers).
//! - `status`: pure derivation of the status and its Events.
//!
//! Only `observe` (its caches in `observe::stores`, and discovery),
//! `apply`, `context` and `controller` (with its leader election) hold the
//! operator's client; the CLI (`cli/`) has its own.

pub mod api;
pub mod apply;
pub mod cli;
pub mod context;
pub mod controller;
pub mod desired;
pub mod http;
pub mod metrics;
pub mod observe;
pub mod pipeline;
pub mod plan;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod settings_keys;
pub mod status;
pub mod validate;
