//! The tables of `homeserver.yaml` keys that both `validate` (which refuses
//! what `settings` may not set) and `desired` (which writes the file) read:
//! the keys the operator owns, and every key Synapse knows. Kept apart from
//! both so neither depends on the other for them.

pub mod owned;
pub mod synapse_keys;
