//! Caduceus: a Kubernetes operator that runs Matrix messengers for hospitals.

pub mod api;
pub mod build;
pub mod rbac;
