//! The published state of one pod: `<load>-<updateMs>-<ROUTING>` (SPEC §3).
//!
//! Readers accept the old two-part `<load>-<updateMs>` (routing `READY`) and report any
//! value they cannot parse, so one bad field never fails a whole service.

use crate::config::RoutingState;
use crate::error::{Error, Result};

/// One pod's state as read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodState {
    /// The pod's index.
    pub pod_index: u32,
    /// Its weighted load.
    pub load: u32,
    /// When it was published, in milliseconds since the Unix epoch on the store's clock.
    pub update_ms: u64,
    /// Its routing state.
    pub routing_state: RoutingState,
    /// Its placement weight for [`Placement::Weighted`](crate::Placement::Weighted) (default 100).
    pub weight: u32,
}

/// The weight a pod has unless it publishes another.
pub const DEFAULT_WEIGHT: u32 = 100;

/// Formats the stored value. A weight other than the default is appended as a fourth part
/// (`<load>-<updateMs>-<ROUTING>-<weight>`); pods with the default weight write SPEC's
/// three-part form exactly.
pub fn format_value(load: u32, update_ms: u64, routing: RoutingState, weight: u32) -> String {
    if weight == DEFAULT_WEIGHT {
        format!("{load}-{update_ms}-{}", routing.as_str())
    } else {
        format!("{load}-{update_ms}-{}-{weight}", routing.as_str())
    }
}

/// Parses one field of the pod-state hash.
pub fn parse(field: &str, value: &str) -> Result<PodState> {
    let bad = |why: &str| Error::store(format!("pod state {field:?} = {value:?}: {why}"));
    let pod_index = parse_decimal(field)
        .filter(|p| *p <= crate::ident::MAX_POD_INDEX as u64)
        .ok_or_else(|| bad("field is not a pod index"))? as u32;
    let mut parts = value.split('-');
    let load = parts
        .next()
        .and_then(parse_decimal)
        .filter(|l| *l <= u32::MAX as u64)
        .ok_or_else(|| bad("load is not a non-negative integer"))? as u32;
    let update_ms = parts
        .next()
        .and_then(parse_decimal)
        .ok_or_else(|| bad("update time is not a non-negative integer"))?;
    // Routing words contain `_`, never `-`, so a plain split finds the optional weight.
    let routing = match parts.next() {
        None => RoutingState::Ready,
        Some(word) => word.parse().map_err(|_| bad("unknown routing state"))?,
    };
    let weight = match parts.next() {
        None => DEFAULT_WEIGHT,
        Some(w) => parse_decimal(w)
            .filter(|w| *w <= u32::MAX as u64)
            .ok_or_else(|| bad("weight is not a non-negative integer"))? as u32,
    };
    if parts.next().is_some() {
        return Err(bad("too many parts"));
    }
    Ok(PodState {
        pod_index,
        load,
        update_ms,
        routing_state: routing,
        weight,
    })
}

/// Canonical non-negative decimal: digits only, at most 19 of them, no leading zero (but `0`).
/// The one rule for every number read from the store, in both stores and in the scripts, so
/// `"03"` is never pod 3 in one place and an error in another.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty()
        || s.len() > 19
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Parses a stored link value (a pod index in canonical decimal).
pub(crate) fn parse_pod(what: &str, value: &str) -> Result<u32> {
    parse_decimal(value)
        .filter(|p| *p <= crate::ident::MAX_POD_INDEX as u64)
        .map(|p| p as u32)
        .ok_or_else(|| Error::store(format!("{what} holds {value:?}, not a pod index")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(format_value(1, 2, RoutingState::Ready, 10), "1-2-READY-10");
        assert_eq!(parse("1", "1-2-READY-10").unwrap().weight, 10);
        let v = format_value(
            120,
            1_700_000_000_123,
            RoutingState::DenyNewCall,
            DEFAULT_WEIGHT,
        );
        assert_eq!(v, "120-1700000000123-DENY_NEW_CALL");
        let s = parse("3", &v).unwrap();
        assert_eq!(
            (s.pod_index, s.load, s.update_ms, s.routing_state),
            (3, 120, 1_700_000_000_123, RoutingState::DenyNewCall)
        );
    }

    #[test]
    fn old_two_part_form_is_ready() {
        assert_eq!(
            parse("0", "7-99").unwrap().routing_state,
            RoutingState::Ready
        );
    }

    #[test]
    fn bad_values_are_store_errors() {
        for (f, v) in [
            ("x", "1-2-READY"),
            ("1", "-1-2"),
            ("1", "1-2-NOPE"),
            ("1", ""),
            ("1", "1"),
            ("-1", "1-2"),
            ("03", "1-2-READY"),
            ("3", "01-2-READY"),
        ] {
            assert_eq!(
                parse(f, v).unwrap_err().kind(),
                crate::ErrorKind::StoreError,
                "{f}={v}"
            );
        }
    }
}
