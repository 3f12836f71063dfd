//! Test support shared by every crate's tests: in-memory adapters of every port and the
//! fixtures several test suites use. A dev-dependency only, never linked into a Lambda.

pub mod fixtures;
pub mod fuzz;
pub mod http;
pub mod logs;
pub mod memory;

pub use memory::*;
