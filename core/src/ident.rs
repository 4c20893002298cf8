//! Identifier rules (SPEC §2), checked before anything touches the store.
//!
//! Every identifier ends up inside a Redis key, most inside a cluster hash tag `{…}`. The
//! rules here are what keep one user's or namespace's keys from colliding with another's:
//! this module must never accept a `{`, `}` or `:` where SPEC forbids it.

use crate::error::{Error, Result};

/// Largest pod index: a StatefulSet ordinal is a non-negative `i32`.
pub const MAX_POD_INDEX: u32 = i32::MAX as u32;
/// Longest uid in bytes.
pub const MAX_UID_BYTES: usize = 512;

/// Byte tables for the fast path (a cache hit validates its arguments too).
const fn table(kind: u8) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match kind {
            // namespace: [a-z0-9-]
            0 => b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
            // service name: [A-Za-z0-9._-]
            1 => b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-',
            // uid byte that needs no closer look: not an ASCII control, not a brace, and not
            // 0xC2 (the lead byte of the C1 controls U+0080..U+009F).
            _ => b >= 0x20 && b != 0x7f && b != b'{' && b != b'}' && b != 0xc2,
        };
        i += 1;
    }
    t
}

static NAMESPACE_BYTES: [bool; 256] = table(0);
static SERVICE_BYTES: [bool; 256] = table(1);
static UID_BYTES: [bool; 256] = table(2);

/// Checks a namespace: `""` (the local one) or a DNS label of 1–63 `[a-z0-9-]`.
pub fn check_namespace(ns: &str) -> Result<()> {
    if ns.is_empty() {
        return Ok(());
    }
    check_namespace_label("namespace", ns)
}

/// Checks a namespace that must be named (a driver's own, or a store call's).
#[inline]
pub fn check_namespace_label(field: &str, ns: &str) -> Result<()> {
    if !ns.is_empty() && ns.len() <= 63 && ns.bytes().all(|b| NAMESPACE_BYTES[b as usize]) {
        return Ok(());
    }
    if ns.is_empty() || ns.len() > 63 {
        return Err(Error::invalid_argument(
            field,
            format!("{} must be 1-63 characters of [a-z0-9-]", quote(ns)),
        ));
    }
    if let Some(c) = ns
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(Error::invalid_argument(
            field,
            format!("{} contains {c:?}; allowed are [a-z0-9-]", quote(ns)),
        ));
    }
    Ok(())
}

/// Checks a service name (also used for tags): 1–253 chars of `[A-Za-z0-9._-]`.
#[inline]
pub fn check_service(field: &str, svc: &str) -> Result<()> {
    if !svc.is_empty() && svc.len() <= 253 && svc.bytes().all(|b| SERVICE_BYTES[b as usize]) {
        return Ok(());
    }
    if svc.is_empty() || svc.len() > 253 {
        return Err(Error::invalid_argument(
            field,
            format!("{} must be 1-253 characters of [A-Za-z0-9._-]", quote(svc)),
        ));
    }
    if let Some(c) = svc
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::invalid_argument(
            field,
            format!("{} contains {c:?}; allowed are [A-Za-z0-9._-]", quote(svc)),
        ));
    }
    Ok(())
}

/// Checks a uid: 1–512 bytes of UTF-8, no `{`, `}` and no control characters.
#[inline]
pub fn check_uid(uid: &str) -> Result<()> {
    if !uid.is_empty() && uid.len() <= MAX_UID_BYTES && uid.bytes().all(|b| UID_BYTES[b as usize]) {
        return Ok(());
    }
    check_uid_slow(uid)
}

#[cold]
fn check_uid_slow(uid: &str) -> Result<()> {
    if uid.is_empty() || uid.len() > MAX_UID_BYTES {
        return Err(Error::invalid_argument(
            "uid",
            format!("must be 1-{MAX_UID_BYTES} bytes, got {} bytes", uid.len()),
        ));
    }
    if let Some(c) = uid
        .chars()
        .find(|c| *c == '{' || *c == '}' || c.is_control())
    {
        return Err(Error::invalid_argument(
            "uid",
            format!(
                "{} contains {c:?}; '{{', '}}' and control characters are not allowed",
                quote(uid)
            ),
        ));
    }
    Ok(())
}

/// Checks raw bytes as a uid: valid UTF-8 first, then [`check_uid`].
pub fn uid_from_bytes(bytes: &[u8]) -> Result<&str> {
    let s = std::str::from_utf8(bytes)
        .map_err(|e| Error::invalid_argument("uid", format!("not valid UTF-8 ({e})")))?;
    check_uid(s)?;
    Ok(s)
}

/// Checks a pod index given as a signed number (as bindings receive it).
pub fn pod_index(field: &str, value: i64) -> Result<u32> {
    if (0..=MAX_POD_INDEX as i64).contains(&value) {
        Ok(value as u32)
    } else {
        Err(Error::invalid_argument(
            field,
            format!("{value} is not a pod index (0..={MAX_POD_INDEX})"),
        ))
    }
}

pub(crate) fn check_pod(pod: u32) -> Result<u32> {
    pod_index("pod_index", pod as i64)
}

/// A value for messages: quoted, and cut short when long.
pub(crate) fn quote(s: &str) -> String {
    if s.len() <= 80 {
        format!("{s:?}")
    } else {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &s[..end], s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn namespaces() {
        assert!(check_namespace("").is_ok());
        assert!(check_namespace("default").is_ok());
        assert!(check_namespace("a-1").is_ok());
        for bad in ["a:b", "A", "a{", "a b", &"a".repeat(64)] {
            assert_eq!(
                check_namespace(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
        assert!(check_namespace_label("namespace", "").is_err());
        let huge = "a".repeat(1 << 20);
        assert!(
            check_namespace(&huge).unwrap_err().message().len() < 300,
            "messages stay short"
        );
    }

    #[test]
    fn services() {
        assert!(check_service("service", "room-service.v2_a").is_ok());
        for bad in ["", "a:b", "a{b", "a}b", "a b", &"a".repeat(254)] {
            assert!(check_service("service", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uids() {
        assert!(check_uid("user123").is_ok());
        assert!(check_uid("用户:42/ä").is_ok());
        assert!(check_uid(&"x".repeat(512)).is_ok());
        assert!(
            check_uid("a\u{a0}b").is_ok(),
            "U+00A0 is not a control character"
        );
        for bad in [
            "",
            "a}b",
            "a{b",
            "a\nb",
            "a\u{7f}",
            "a\u{85}b",
            &"x".repeat(513),
        ] {
            let e = check_uid(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains("uid"), "{e}");
        }
        assert!(uid_from_bytes(&[0xff, 0x41]).is_err());
    }

    #[test]
    fn pod_indexes() {
        assert_eq!(pod_index("pod", 0).unwrap(), 0);
        assert_eq!(pod_index("pod", i32::MAX as i64).unwrap(), MAX_POD_INDEX);
        assert!(pod_index("pod", -1).is_err());
        assert!(pod_index("pod", i32::MAX as i64 + 1).is_err());
    }
}
