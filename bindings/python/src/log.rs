//! Core log events → Python `logging` (logger `stateful_route` and its children).
//!
//! The sink runs on whatever thread logged, often a runtime thread: it takes the GIL, calls
//! `logging.getLogger(name).log(level, message)` and returns. It never runs while the
//! interpreter shuts down (`try_attach`), swallows logging's own errors, and is never called
//! by a thread that holds the GIL while it waits for the runtime (every wait releases the GIL).
//! Only events at or above the forwarded level cross into Python (default `INFO`; see
//! `set_log_level`), so debug events cost nothing unless asked for.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use stateful_route::log::{clear_log_sink, set_log_sink, LogRecord};
use tracing::Level;

use crate::error::invalid_argument;

static GET_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn python_level(level: &str) -> u8 {
    match level {
        "ERROR" => 40,
        "WARN" => 30,
        "INFO" => 20,
        "DEBUG" => 10,
        _ => 5,
    }
}

/// `stateful_route::server` → `stateful_route.server`; anything else goes under `stateful_route`.
fn logger_name(target: &str) -> String {
    let dotted = target.replace("::", ".");
    if dotted == "stateful_route" || dotted.starts_with("stateful_route.") {
        dotted
    } else {
        format!("stateful_route.{dotted}")
    }
}

fn emit(record: &LogRecord) {
    let _ = Python::try_attach(|py| -> PyResult<()> {
        let get_logger = GET_LOGGER.get_or_try_init(py, || {
            py.import("logging")?
                .getattr("getLogger")
                .map(Bound::unbind)
        })?;
        let logger = get_logger.bind(py).call1((logger_name(&record.target),))?;
        logger.call_method1("log", (python_level(record.level), record.message.as_str()))?;
        Ok(())
    });
}

/// Forwards core events at `level` and above. `level` is a `logging` level number or name
/// (`"DEBUG"`, `"INFO"`, `"WARNING"`, `"ERROR"`), or `None` to stop forwarding.
#[pyfunction]
pub fn set_log_level(level: &Bound<'_, PyAny>) -> PyResult<()> {
    if level.is_none() {
        clear_log_sink();
        return Ok(());
    }
    let max = if let Ok(n) = level.extract::<i64>() {
        match n {
            ..=9 => Level::TRACE,
            10..=19 => Level::DEBUG,
            20..=29 => Level::INFO,
            30..=39 => Level::WARN,
            _ => Level::ERROR,
        }
    } else {
        let name: String = level.extract().map_err(|_| {
            invalid_argument("level", "expected a logging level (int or name) or None")
        })?;
        match name.to_ascii_uppercase().as_str() {
            "TRACE" | "NOTSET" => Level::TRACE,
            "DEBUG" => Level::DEBUG,
            "INFO" => Level::INFO,
            "WARN" | "WARNING" => Level::WARN,
            "ERROR" | "CRITICAL" | "FATAL" => Level::ERROR,
            _ => {
                return Err(invalid_argument(
                    "level",
                    format!("{name:?} is not a logging level"),
                ))
            }
        }
    };
    set_log_sink(max, emit);
    Ok(())
}

/// Installs the sink at `INFO` (at import).
pub fn install_default() {
    set_log_sink(Level::INFO, emit);
}

/// Stops forwarding (at interpreter exit, before Python tears down `logging`).
pub fn shutdown() {
    clear_log_sink();
}
