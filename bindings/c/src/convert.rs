//! Values in and out: checked pointers, UTF-8 strings as `sr_str` (pointer + length, by
//! value), and the plain-data lists the library allocates (each freed by its own `_free`).
//!
//! Every pointer is checked here before anything is read or any work is done, so a NULL
//! out-parameter fails the call before the store is touched.

use std::collections::BTreeMap;
use std::ffi::{c_char, CStr, CString};
use std::ptr;

use sr_core::{Error, ErrorKind, Result};

use crate::error::c_string_lossy;

/// A borrowed UTF-8 string, passed by value: `len` bytes at `ptr` (no NUL needed). Every
/// string argument and string field of an input struct is one. `{NULL, 0}` is `""`; NULL
/// with a non-zero length is `SR_INVALID_ARGUMENT`, and so is invalid UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_str {
    /// The bytes (NULL only with `len` 0).
    pub ptr: *const c_char,
    /// Their number.
    pub len: usize,
}

impl sr_str {
    /// Borrows `s` for as long as `s` lives (for strings the library hands to C).
    pub(crate) fn of(s: &str) -> sr_str {
        sr_str {
            ptr: s.as_ptr().cast(),
            len: s.len(),
        }
    }

    /// Borrows a library-owned C string (the bytes before its NUL).
    pub(crate) fn of_c(s: &CStr) -> sr_str {
        sr_str {
            ptr: s.as_ptr(),
            len: s.to_bytes().len(),
        }
    }

    /// The bytes; `None` for NULL with a non-zero length (`{NULL, 0}` is `""`).
    ///
    /// # Safety
    /// `ptr` is NULL or valid for `len` bytes for `'a`.
    pub(crate) unsafe fn bytes<'a>(self) -> Option<&'a [u8]> {
        match (self.ptr.is_null(), self.len) {
            (true, 0) => Some(&[]),
            (true, _) => None,
            // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
            (false, len) => Some(unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), len) }),
        }
    }

    /// The string argument `field`: `SR_INVALID_ARGUMENT` for NULL with a length or invalid
    /// UTF-8.
    ///
    /// # Safety
    /// As [`sr_str::bytes`].
    pub(crate) unsafe fn get<'a>(self, field: &str) -> Result<&'a str> {
        // SAFETY: forwarded from the caller.
        let bytes = unsafe { self.bytes() }
            .ok_or_else(|| invalid(field, "is NULL with a non-zero length"))?;
        std::str::from_utf8(bytes).map_err(|e| invalid(field, &format!("is not valid UTF-8 ({e})")))
    }
}

/// A list of pod indexes owned by the library. Free with `sr_pod_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_pod_list {
    /// `len` pod indexes; -1 marks "no link" where a function says so.
    pub pods: *mut i64,
    /// Number of entries.
    pub len: usize,
}

/// One persistent link of a user: service → pod.
#[repr(C)]
#[derive(Debug)]
pub struct sr_service_link {
    /// The service name, NUL-terminated.
    pub service: *mut c_char,
    /// The pod the user is linked to.
    pub pod_index: i64,
}

/// A user's persistent links, sorted by service. Free with `sr_service_links_free`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_service_links {
    /// `len` entries.
    pub links: *mut sr_service_link,
    /// Number of entries.
    pub len: usize,
}

/// A list of optional strings owned by the library; a NULL entry means "none".
/// Free with `sr_string_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_string_list {
    /// `len` NUL-terminated strings or NULLs.
    pub strings: *mut *mut c_char,
    /// Number of entries.
    pub len: usize,
}

pub(crate) fn invalid(field: &str, rule: &str) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("invalid {field}: {rule}"),
    )
}

/// An array of strings given as `sr_str`s.
///
/// # Safety
/// `items` is NULL or valid for `len` elements, each valid as in [`sr_str::get`].
pub(crate) unsafe fn str_array<'a>(
    field: &str,
    items: *const sr_str,
    len: usize,
) -> Result<Vec<&'a str>> {
    if items.is_null() {
        return Err(invalid(field, "is NULL"));
    }
    // SAFETY: the caller guarantees `len` elements at `items`.
    let items = unsafe { std::slice::from_raw_parts(items, len) };
    items
        .iter()
        .enumerate()
        // SAFETY: each element is valid as the caller guarantees.
        .map(|(i, s)| unsafe { s.get(&format!("{field}[{i}]")) })
        .collect()
}

/// A handle argument.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` for `'a`.
pub(crate) unsafe fn handle<'a, T>(field: &str, ptr: *const T) -> Result<&'a T> {
    // SAFETY: the caller guarantees validity when non-NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| invalid(field, "is NULL"))
}

/// A pod index argument (SPEC §2: 0 … 2^31−1; negatives are errors, never sentinels).
pub(crate) fn pod_arg(value: i64) -> Result<u32> {
    sr_core::ident::pod_index("pod_index", value)
}

/// "none" is -1 in C.
pub(crate) fn pod_or_none(p: Option<u32>) -> i64 {
    p.map_or(-1, i64::from)
}

/// A library-owned C string (NULL for none).
pub(crate) fn string_out(s: Option<String>) -> *mut c_char {
    s.map_or(ptr::null_mut(), |s| c_string_lossy(s).into_raw())
}

pub(crate) fn boxed_slice<T>(v: Vec<T>) -> (*mut T, usize) {
    let b = v.into_boxed_slice();
    let len = b.len();
    (Box::into_raw(b).cast::<T>(), len)
}

/// Takes the entries of a list [`boxed_slice`] made and sets it to `{NULL, 0}`: none for a
/// list already taken (or zeroed).
///
/// # Safety
/// `(*items, *len)` is `(NULL, _)` or came from [`boxed_slice`].
pub(crate) unsafe fn take<T>(items: &mut *mut T, len: &mut usize) -> Vec<T> {
    let (p, n) = (
        std::mem::replace(items, ptr::null_mut()),
        std::mem::take(len),
    );
    match p.is_null() {
        true => Vec::new(),
        // SAFETY: the caller guarantees provenance.
        false => unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, n)) }.into_vec(),
    }
}

impl sr_pod_list {
    pub(crate) fn new(pods: Vec<i64>) -> sr_pod_list {
        let (pods, len) = boxed_slice(pods);
        sr_pod_list { pods, len }
    }
}

impl sr_service_links {
    pub(crate) fn new(map: BTreeMap<String, u32>) -> sr_service_links {
        let links = map
            .into_iter()
            .map(|(s, p)| sr_service_link {
                service: c_string_lossy(s).into_raw(),
                pod_index: p.into(),
            })
            .collect();
        let (links, len) = boxed_slice(links);
        sr_service_links { links, len }
    }
}

impl sr_string_list {
    pub(crate) fn new(items: Vec<Option<String>>) -> sr_string_list {
        let (strings, len) = boxed_slice(items.into_iter().map(string_out).collect());
        sr_string_list { strings, len }
    }
}

/// Frees a string returned by this library (through a `char **` out-parameter). NULL is a
/// no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from `CString::into_raw` in this library and is freed once.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Frees the entries of `list` and sets it to `{NULL, 0}`. NULL, or a list already freed
/// (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_pod_list_free(list: *mut sr_pod_list) {
    // SAFETY: the caller passes NULL or a list this library filled, not freed yet.
    if let Some(l) = unsafe { list.as_mut() } {
        drop(unsafe { take(&mut l.pods, &mut l.len) });
    }
}

/// Frees the entries of `links` (and their strings) and sets it to `{NULL, 0}`. NULL, or a
/// list already freed (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_service_links_free(links: *mut sr_service_links) {
    // SAFETY: the caller passes NULL or a list this library filled, not freed yet.
    if let Some(l) = unsafe { links.as_mut() } {
        // SAFETY: each service string came from `CString::into_raw`.
        (unsafe { take(&mut l.links, &mut l.len) })
            .into_iter()
            .for_each(|e| unsafe { sr_string_free(e.service) });
    }
}

/// Frees the entries of `list` (and their strings) and sets it to `{NULL, 0}`. NULL, or a
/// list already freed (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_string_list_free(list: *mut sr_string_list) {
    // SAFETY: the caller passes NULL or a list this library filled, not freed yet.
    if let Some(l) = unsafe { list.as_mut() } {
        // SAFETY: each entry is NULL or came from `CString::into_raw`.
        (unsafe { take(&mut l.strings, &mut l.len) })
            .into_iter()
            .for_each(|e| unsafe { sr_string_free(e) });
    }
}

/// The users of one pod in a batch read's answer.
#[repr(C)]
#[derive(Debug)]
pub struct sr_pod_uids {
    /// The pod.
    pub pod_index: i64,
    /// Its users, in input order (no NULL entries).
    pub uids: sr_string_list,
}

/// A batch read's answer as the core groups it: pod → uids, sorted by pod; users without a
/// link are left out. Free with `sr_pod_groups_free`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_pod_groups {
    /// `len` groups.
    pub groups: *mut sr_pod_uids,
    /// Number of groups.
    pub len: usize,
}

impl sr_pod_groups {
    pub(crate) fn new(by_pod: BTreeMap<u32, Vec<String>>) -> sr_pod_groups {
        let groups = by_pod.into_iter().map(|(pod, uids)| sr_pod_uids {
            pod_index: pod.into(),
            uids: sr_string_list::new(uids.into_iter().map(Some).collect()),
        });
        let (groups, len) = boxed_slice(groups.collect());
        sr_pod_groups { groups, len }
    }
}

/// Frees the groups of `groups` (and their uids) and sets it to `{NULL, 0}`. NULL, or a list
/// already freed (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_pod_groups_free(groups: *mut sr_pod_groups) {
    // SAFETY: the caller passes NULL or a list this library filled, not freed yet.
    if let Some(l) = unsafe { groups.as_mut() } {
        // SAFETY: each group's uids came from `sr_string_list::new`.
        (unsafe { take(&mut l.groups, &mut l.len) })
            .into_iter()
            .for_each(|mut g| unsafe { sr_string_list_free(&mut g.uids) });
    }
}
