//! The core's log events in JS: `setLogger(callback, level)`, or `STATEFUL_ROUTE_LOG=<level>`
//! in the environment to print them to stderr without any code.
//!
//! The callback is a weak threadsafe function: it never keeps the process alive, and a record
//! logged while the JS thread is busy waits in napi's queue (the core's sink must not block).

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use stateful_route::log::{clear_log_sink, parse_level, set_log_sink};
use stateful_route::ErrorKind;

use crate::error::{invalid, thrown, Result};

/// The environment variable read when the addon loads: `error`, `warn`, `info`, `debug` or
/// `trace` prints the core's events at that level and above to stderr.
const LOG_ENV: &str = "STATEFUL_ROUTE_LOG";

/// A log event of the core.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// `'ERROR'`, `'WARN'`, `'INFO'`, `'DEBUG'` or `'TRACE'`.
    pub level: String,
    /// The module that logged, e.g. `'stateful_route::server'`.
    pub target: String,
    /// The message followed by its fields as `key=value`.
    pub message: String,
}

/// Sends the core's log events at `level` (default `'info'`) and above to `callback`, which is
/// called on the JS thread and does not keep the process alive. `setLogger(null)` stops
/// forwarding. Returns false if another logger of the process took the core's events first.
#[napi]
pub fn set_logger(
    callback: Option<Function<'_, LogRecord, ()>>,
    level: Option<String>,
) -> Result<bool> {
    let Some(callback) = callback else {
        clear_log_sink();
        return Ok(true);
    };
    let level_name = level.unwrap_or_else(|| "info".to_string());
    let level = parse_level(&level_name).ok_or_else(|| {
        thrown(invalid(
            ErrorKind::InvalidArgument,
            "level",
            format!("{level_name:?} is not one of error, warn, info, debug, trace"),
        ))
    })?;
    let tsfn = callback
        .build_threadsafe_function::<LogRecord>()
        .weak::<true>()
        .build()
        .map_err(|e| napi::Error::new(crate::error::Code::from(e.status), e.reason.clone()))?;
    Ok(set_log_sink(level, move |r| {
        let record = LogRecord {
            level: r.level.to_string(),
            target: r.target.clone(),
            message: r.message.clone(),
        };
        tsfn.call(record, ThreadsafeFunctionCallMode::NonBlocking);
    }))
}

/// Installs the stderr logger when `STATEFUL_ROUTE_LOG` names a level.
pub fn init_from_env() {
    let Ok(name) = std::env::var(LOG_ENV) else {
        return;
    };
    match parse_level(&name) {
        Some(level) => {
            set_log_sink(level, |r| eprintln!("stateful-route {} {}: {}", r.level, r.target, r.message));
        }
        None => eprintln!("stateful-route: ignoring {LOG_ENV}={name:?}: not one of error, warn, info, debug, trace"),
    }
}
