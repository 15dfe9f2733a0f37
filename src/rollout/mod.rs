//! Pure rollout logic: release resolution, maintenance windows, schema
//! compatibility and the stage state machine.

pub mod machine;
pub mod schema;
pub mod windows;
