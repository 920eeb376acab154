//! meshd library.
