//! The one error type of the library.
//!
//! Every binding maps [`ErrorKind`] one to one: Python exception classes, JS `err.code`,
//! C status codes, Go error values. Messages say what was wrong and with which value; they
//! never carry a password (see [`redact_url`]).

use std::fmt;
use std::sync::Arc;

/// What went wrong, as a stable code shared by every language binding (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument broke its rule (SPEC §2, §4); nothing was written.
    InvalidArgument,
    /// A configuration value is out of range (SPEC §9).
    InvalidConfig,
    /// The namespace is valid but not the driver's local one.
    NamespaceNotLocal,
    /// The service has no routable pod for a new user.
    NoAvailablePod,
    /// The user is linked persistently to a pod that is not alive.
    PodUnavailable,
    /// The store cannot be reached.
    StoreUnavailable,
    /// The store answered with an error or with data it should not hold.
    StoreError,
    /// A store call did not finish within its deadline.
    Timeout,
    /// The driver is not started/initialised yet, or already stopped/closed.
    Closed,
    /// A bug in this library.
    Internal,
}

impl ErrorKind {
    /// Every kind, in the order of the C status codes (which start at 1).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidConfig,
        ErrorKind::NamespaceNotLocal,
        ErrorKind::NoAvailablePod,
        ErrorKind::PodUnavailable,
        ErrorKind::StoreUnavailable,
        ErrorKind::StoreError,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::Internal,
    ];

    /// The code every binding shows, e.g. `"NO_AVAILABLE_POD"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::InvalidConfig => "INVALID_CONFIG",
            ErrorKind::NamespaceNotLocal => "NAMESPACE_NOT_LOCAL",
            ErrorKind::NoAvailablePod => "NO_AVAILABLE_POD",
            ErrorKind::PodUnavailable => "POD_UNAVAILABLE",
            ErrorKind::StoreUnavailable => "STORE_UNAVAILABLE",
            ErrorKind::StoreError => "STORE_ERROR",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::Closed => "CLOSED",
            ErrorKind::Internal => "INTERNAL",
        }
    }

    /// The kind whose code is `code`, if any.
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == code)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible call. Cheap to clone (concurrent callers of one
/// coalesced store call all receive the same error).
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: Arc<str>,
    pod: Option<u32>,
}

impl Error {
    /// An error of `kind` with a message that says what was wrong and with which value.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into().into(),
            pod: None,
        }
    }

    pub(crate) fn invalid_argument(field: &str, rule: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid {field}: {rule}"),
        )
    }

    pub(crate) fn invalid_config(field: &str, rule: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("invalid config {field}: {rule}"),
        )
    }

    pub(crate) fn closed(what: &str) -> Self {
        Error::new(ErrorKind::Closed, what.to_string())
    }

    pub(crate) fn store(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::StoreError, message)
    }

    pub(crate) fn pod_unavailable(service: &str, pod: u32) -> Self {
        let mut e = Error::new(
            ErrorKind::PodUnavailable,
            format!("user is linked persistently to pod {pod} of service {service:?}, which is not alive"),
        );
        e.pod = Some(pod);
        e
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (without the code).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For [`ErrorKind::PodUnavailable`]: the pod the user is linked to.
    pub fn pod_index(&self) -> Option<u32> {
        self.pod
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        let kind = if e.kind() == redis::ErrorKind::AuthenticationFailed {
            // The store answered: it refused the credentials.
            ErrorKind::StoreError
        } else if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            ErrorKind::StoreUnavailable
        } else {
            ErrorKind::StoreError
        };
        // redis-rs never puts the connection URL (and so no password) into its errors.
        Error::new(kind, format!("redis: {e}"))
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                // `redis://secret@host` puts the password alone before `@`.
                "***".to_string()
            };
            format!("{scheme}://{shown}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.as_str()), Some(k));
        }
        assert_eq!(ErrorKind::from_code("NOPE"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://app:s3cret@127.0.0.1:6379/0"),
            "redis://app:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("rediss://s3cret@h"), "rediss://***@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }
}
