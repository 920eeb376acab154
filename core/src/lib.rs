//! mesh-core: the shared library of mesh.
//!
//! The decision logic here is free of I/O: clocks are injected, so breakers, pools and
//! validation are tested deterministically. The daemon (`meshd`) and the tools build on it.

pub mod accesslog;
pub mod balance;
pub mod breaker;
pub mod fault;
pub mod h1;
pub mod health;
pub mod istio;
pub mod lograte;
pub mod model;
pub mod outlier;
pub mod pool;
pub mod retry;
pub mod runtime;
pub mod stats;
pub mod text;
