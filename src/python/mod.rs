//! The PyO3 bindings, and nothing else: conversions between Python and Rust
//! values, one file per class, and the single mapping from [`crate::Error`] to
//! the Python exception hierarchy. All logic lives in the layers below; the
//! typed, documented Python API wraps these classes in `python/lakewave/`.

mod connection;
mod convert;
mod errors;
mod group;
mod result;
mod server;
mod wait;

use pyo3::prelude::*;

pub fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<connection::Connection>()?;
    module.add_class::<result::QueryResult>()?;
    module.add_class::<result::Execution>()?;
    module.add_class::<server::Server>()?;
    module.add_class::<group::GroupMember>()?;
    module.add_function(wrap_pyfunction!(group::group_file, module)?)?;
    module.add_function(wrap_pyfunction!(group::group_init_text, module)?)?;
    module.add_function(wrap_pyfunction!(group::group_haproxy_config, module)?)?;
    module.add_function(wrap_pyfunction!(group::users_file_line, module)?)?;
    module.add_function(wrap_pyfunction!(group::group_updated_text, module)?)?;
    errors::register(module)?;
    Ok(())
}

#[pymodule]
fn _internal(module: &Bound<'_, PyModule>) -> PyResult<()> {
    init(module)
}
