//! `larder._larder`: the Rust half of the `larder` Python package.
use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _larder(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
