//! Forwarding the core's `tracing` events to a binding's logger (Python `logging`, a JS or C
//! callback, Go `slog`).
//!
//! A binding installs one sink per process with [`set_log_sink`]; the sink receives plain
//! data (level, target, message with its fields) and may be called from any thread, including
//! the runtime's. It must not block for long and must not call back into the library.
//! Rust programs use their own `tracing` subscriber instead and never call this.

use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// A log record handed to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The module that logged, e.g. `stateful_route::server`.
    pub target: String,
    /// The message followed by its fields as `key=value`.
    pub message: String,
}

type Sink = Arc<dyn Fn(&LogRecord) + Send + Sync>;

struct Shared {
    sink: RwLock<Option<(Level, Sink)>>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

struct SinkLayer;

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let Some(shared) = SHARED.get() else {
            return false;
        };
        let guard = shared.sink.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().is_some_and(|(max, _)| meta.level() <= max)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(shared) = SHARED.get() else { return };
        let sink = {
            let guard = shared.sink.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some((max, sink)) if event.metadata().level() <= max => sink.clone(),
                _ => return,
            }
        };
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        let record = LogRecord {
            level: level_name(*event.metadata().level()),
            target: event.metadata().target().to_string(),
            message: v.finish(),
        };
        // A sink that panics must never unwind into the library (or across an FFI boundary).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(&record)));
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_string()
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Parses `error`, `warn`, `info`, `debug`, `trace` (any case).
pub fn parse_level(s: &str) -> Option<Level> {
    s.trim().parse().ok()
}

/// Sends the core's events at `max_level` and above to `sink`, replacing any earlier sink.
/// Returns false if another global `tracing` subscriber was installed first (then nothing is
/// forwarded).
pub fn set_log_sink(max_level: Level, sink: impl Fn(&LogRecord) + Send + Sync + 'static) -> bool {
    let mut installed_here = false;
    let shared = SHARED.get_or_init(|| {
        installed_here = true;
        Shared {
            sink: RwLock::new(None),
        }
    });
    *shared.sink.write().unwrap_or_else(|p| p.into_inner()) = Some((max_level, Arc::new(sink)));
    if installed_here {
        let subscriber = tracing_subscriber::registry().with(SinkLayer);
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            return false;
        }
    }
    tracing::callsite::rebuild_interest_cache();
    true
}

/// Stops forwarding (the sink is dropped).
pub fn clear_log_sink() {
    if let Some(shared) = SHARED.get() {
        *shared.sink.write().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::callsite::rebuild_interest_cache();
    }
}
