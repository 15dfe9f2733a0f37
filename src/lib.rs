//! Caduceus: a Kubernetes operator that runs Matrix messengers for hospitals.
//!
//! A reconcile (`reconcile`) is one pipeline whose data flows one way:
//!
//! - `observe`: every cache read for an instance -> plain values of what
//!   exists (`observe::stores` holds the caches; `observe::jobs` is the one
//!   reader of Job outcomes; `observe::readiness` reads workload status).
//! - `validate`: every rule the schema cannot express, returning a
//!   `ValidatedSpec` with the parsed values: effective release and pause per
//!   stage, source ranges (`validate::network`), the backup schedule
//!   (`validate::schedule`), promotion windows with their time zone and the
//!   soak (`validate::windows`). It uses only `api` and `settings_keys`.
//! - `plan`: pure decisions per concern (the database engine against the
//!   cluster, keys, rollout, restore, backups, pruning, finalizers) from the
//!   validated spec and the observation. Rules that depend on cluster state
//!   (the engine a stage runs on, CloudNativePG's CRDs) live here.
//! - `desired`: pure builders from the validated spec and plain decision
//!   values (releases, a snapshot to restore) to objects, with a shared pod
//!   builder (`desired::pod`) and merge rule (`desired::merge`). It never
//!   validates and uses nothing of `observe` or `plan`.
//! - `pipeline`: the pure middle, plan then desired for every stage; `render`
//!   runs it on an empty observation, so it shows what the controller applies.
//! - `apply`: the one writer (apply, create-once, delete, status, finalizers).
//! - `status`: pure derivation of the status and its Events.
//!
//! Around it: `api` (types, CEL rules), `names` (every object name and
//! label, shared by all layers), `settings_keys` (the homeserver key
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
