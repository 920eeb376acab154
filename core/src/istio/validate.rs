//! Istio's validation rules for one object, its references across the set, and the settings
//! accepted but not in force.

use super::document::IstioResource;
use crate::model::MeshSet;

/// The problems of one object on its own, as `(path, message)`.
pub(crate) fn check_resource(_r: &IstioResource) -> Vec<(String, String)> {
    Vec::new()
}

/// References of `r` that do not resolve in `set`, pushed as `(path, message)`.
pub(crate) fn check_references(
    _set: &MeshSet,
    _r: &IstioResource,
    _found: &mut Vec<(String, String)>,
) {
}

/// The settings of `r` that meshd accepts but does not apply, pushed as `(path, reason)`.
pub(crate) fn not_in_force(_out: &mut Vec<(String, String)>, _r: &IstioResource) {}
