//! lakewave's one Rust integration-test binary: the store through the public
//! instance API, SQL behaviour, and the `.slt` SQL logic tests in `tests/sql`.

mod common;
mod delta_golden;
mod differential;
mod group;
mod lakehouse;
mod load;
mod refresh;
mod rowstore;
mod sessions;
mod slt;
mod sql;
