//! Values in and out: checked pointers, UTF-8 strings given as pointer + length, and the
//! plain-data lists the library allocates (each freed by its own `_free`).
//!
//! Every pointer is checked here before anything is read or any work is done, so a NULL
//! out-parameter fails the call before the store is touched.

use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::ptr;

use sr_core::{Error, ErrorKind, Result};

use crate::error::c_string_lossy;

/// A borrowed UTF-8 string: `len` bytes at `ptr` (no NUL needed). Used in arrays of strings.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_str {
    /// The bytes; never NULL (use any non-NULL pointer with `len` 0 for `""`).
    pub ptr: *const c_char,
    /// Their number.
    pub len: usize,
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

/// A UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or valid for `len` bytes for `'a`.
pub(crate) unsafe fn str_arg<'a>(field: &str, ptr: *const c_char, len: usize) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(invalid(field, "is NULL"));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|e| invalid(field, &format!("is not valid UTF-8 ({e})")))
}

/// An array of strings given as `sr_str`s.
///
/// # Safety
/// `items` is NULL or valid for `len` elements, each valid as in [`str_arg`].
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
        .map(|(i, s)| unsafe { str_arg(&format!("{field}[{i}]"), s.ptr, s.len) })
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

/// An input struct argument (same rule as a handle).
///
/// # Safety
/// As [`handle`].
pub(crate) unsafe fn input<'a, T>(field: &str, ptr: *const T) -> Result<&'a T> {
    // SAFETY: forwarded.
    unsafe { handle(field, ptr) }
}

/// An out-parameter, checked for NULL; written once with [`Out::set`].
#[derive(Debug)]
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Writes `value` without reading (or dropping) what the caller's memory held.
    pub(crate) fn set(self, value: T) {
        // SAFETY: `out` checked for NULL; the caller of `out` guaranteed validity for writes.
        unsafe { self.0.write(value) }
    }
}

/// An out-parameter.
///
/// # Safety
/// `ptr` is NULL or valid for writes (it may be uninitialised) until the `Out` is set.
pub(crate) unsafe fn out<T>(field: &str, ptr: *mut T) -> Result<Out<T>> {
    if ptr.is_null() {
        return Err(invalid(field, "is NULL"));
    }
    Ok(Out(ptr))
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

/// # Safety
/// `(ptr, len)` came from [`boxed_slice`] and is freed once.
pub(crate) unsafe fn unbox_slice<T>(ptr: *mut T, len: usize) -> Vec<T> {
    // SAFETY: the caller guarantees provenance.
    unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(ptr, len)) }.into_vec()
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
    // SAFETY: the caller passes NULL or a list this library filled.
    let Some(list) = (unsafe { list.as_mut() }) else {
        return;
    };
    if !list.pods.is_null() {
        // SAFETY: allocated by `sr_pod_list::new`.
        drop(unsafe { unbox_slice(list.pods, list.len) });
    }
    list.pods = ptr::null_mut();
    list.len = 0;
}

/// Frees the entries of `links` (and their strings) and sets it to `{NULL, 0}`. NULL, or a
/// list already freed (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_service_links_free(links: *mut sr_service_links) {
    // SAFETY: the caller passes NULL or a list this library filled.
    let Some(list) = (unsafe { links.as_mut() }) else {
        return;
    };
    if !list.links.is_null() {
        // SAFETY: allocated by `sr_service_links::new`.
        for l in unsafe { unbox_slice(list.links, list.len) } {
            // SAFETY: each service string came from `CString::into_raw`.
            unsafe { sr_string_free(l.service) };
        }
    }
    list.links = ptr::null_mut();
    list.len = 0;
}

/// Frees the entries of `list` (and their strings) and sets it to `{NULL, 0}`. NULL, or a
/// list already freed (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_string_list_free(list: *mut sr_string_list) {
    // SAFETY: the caller passes NULL or a list this library filled.
    let Some(list) = (unsafe { list.as_mut() }) else {
        return;
    };
    if !list.strings.is_null() {
        // SAFETY: allocated by `sr_string_list::new`.
        for s in unsafe { unbox_slice(list.strings, list.len) } {
            // SAFETY: each entry is NULL or came from `CString::into_raw`.
            unsafe { sr_string_free(s) };
        }
    }
    list.strings = ptr::null_mut();
    list.len = 0;
}

/// The core's "pod → uids" answer of a batch read as one entry per input uid (-1 = no link),
/// the shape a C caller can index.
pub(crate) fn pods_in_input_order(uids: &[&str], by_pod: BTreeMap<u32, Vec<String>>) -> Vec<i64> {
    let pod_of: std::collections::HashMap<String, u32> = by_pod
        .into_iter()
        .flat_map(|(pod, uids)| uids.into_iter().map(move |u| (u, pod)))
        .collect();
    uids.iter()
        .map(|u| pod_or_none(pod_of.get(*u).copied()))
        .collect()
}
