//! Caduceus: a Kubernetes operator that runs Matrix messengers for hospitals.
//!
//! A reconcile (`reconcile`) is one pipeline whose data flows one way:
//!
//! - `observe`: every cache read for an instance -> plain values of what
//!   exists (`observe::stores` holds the caches; `observe::jobs` is the one
//!   reader of Job outcomes).
//! - `validate`: the rules the schema cannot express. Some checks still run
//!   where their values are parsed: CIDRs in `desired::network`, the backup
//!   schedule in `desired::backup`, windows in `plan::rollout::windows`, and
//!   the homeserver builder asks `validate` again before it writes a file.
//! - `plan`: pure decisions per concern (keys and the database engine,
//!   rollout, restore, backups, pruning, finalizers) from the spec and the
//!   observation.
//! - `desired`: pure builders from the spec and the decisions to objects,
//!   with a shared pod builder (`desired::pod`) and merge rule
//!   (`desired::merge`).
//! - `pipeline`: the pure middle, plan then desired for every stage; `render`
//!   runs it on an empty observation, so it shows what the controller applies.
//! - `apply`: the one writer (apply, create-once, delete, status, finalizers).
//! - `status`: pure derivation of the status and its Events.
//!
//! Around it: `api` (types, CEL rules), `settings_keys` (the homeserver key
//! tables `validate` and `desired` share), `controller` (watches, error
//! policy, leader election), `context` (what reconciles share), `metrics`,
//! `http`, `rbac`, and `cli` with the commands.
//!
//! Only `observe` (its caches, and discovery), `apply`, `context` and
//! `controller` hold the operator's client; the CLI (`cli/`) has its own.

pub mod api;
pub mod apply;
pub mod cli;
pub mod context;
pub mod controller;
pub mod desired;
pub mod http;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod pipeline;
pub mod plan;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod settings_keys;
pub mod status;
pub mod validate;
