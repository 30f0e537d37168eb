//! Shared by the fuzz targets in fuzz_targets/ (docs/reliability.md, "Fuzzing").

mod request;

pub use request::*;
