//! Caduceus: a Kubernetes operator that runs Matrix messengers for hospitals.
//!
//! Data flows one way: `api` → `validate` → `build` (pure) → `apply` →
//! `status`; only `apply`, `reconcile`, `context` and `controller` hold a
//! client.

pub mod api;
pub mod apply;
pub mod build;
pub mod children;
pub mod cli;
pub mod cli_backups;
pub mod context;
pub mod controller;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod promote;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod rollout;
pub mod status;
pub mod validate;
