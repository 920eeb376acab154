//! The App Mesh resource model: resources, document shapes, validation.
