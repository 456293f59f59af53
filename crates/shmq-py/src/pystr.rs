//! `str` to UTF-8 and back through CPython's C API, without an intermediate `bytes` object:
//! the only module of this crate with `unsafe` code.
//!
//! The wheel is built against the stable ABI of CPython 3.9 (abi3), whose limited API has no
//! `PyUnicode_AsUTF8AndSize` (it joined the limited API in 3.10): PyO3 then encodes a `str` by
//! making a `bytes` object. The function itself has been exported by every CPython 3 with the
//! same signature, so [`utf8`] looks it up in the running interpreter once
//! (`dlsym(RTLD_DEFAULT, …)`) and borrows the string's UTF-8 from the `str` object, which
//! keeps it (the pointer for an ASCII string is its own data). Where the interpreter's symbols
//! are not visible to the extension (an embedding that loaded libpython with `RTLD_LOCAL`),
//! the look-up finds nothing and the caller encodes as the limited API allows. CPython's
//! `_pickle` encodes a `str` the same way, and falls back the same way for lone surrogates.
//!
//! Decoding ([`str_from_utf8`]) is in the limited API: one `PyUnicode_DecodeUTF8` with
//! `surrogatepass`, which validates and builds the `str` in one pass.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// `const char *PyUnicode_AsUTF8AndSize(PyObject *unicode, Py_ssize_t *size)`.
type AsUtf8AndSize =
    unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::Py_ssize_t) -> *const c_char;

/// The interpreter's `PyUnicode_AsUTF8AndSize`, looked up on first use; `None` if not visible.
fn as_utf8_and_size() -> Option<AsUtf8AndSize> {
    static FN: OnceLock<Option<AsUtf8AndSize>> = OnceLock::new();
    *FN.get_or_init(|| {
        if std::env::var_os("SHMQ_PY_NO_UTF8_LOOKUP").is_some() {
            return None;
        }
        // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the objects already loaded
        // in the global scope, and dlsym only reads them.
        let p: *mut c_void =
            unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"PyUnicode_AsUTF8AndSize".as_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: the symbol of that name in a CPython 3 interpreter is the function of the
        // signature `AsUtf8AndSize` (unchanged since CPython 3.3, stable ABI since 3.10).
        Some(unsafe { std::mem::transmute::<*mut c_void, AsUtf8AndSize>(p) })
    })
}

/// Whether [`utf8`] borrows from the `str` object (the interpreter's function was found).
pub(crate) fn borrows_utf8() -> bool {
    as_utf8_and_size().is_some()
}

/// The UTF-8 of `s`, borrowed from the `str` object (which caches it: for as long as `s`
/// lives), or `None` if the interpreter's function is not visible or `s` cannot be encoded
/// strictly (lone surrogates; that error is cleared): the caller then encodes it itself.
pub(crate) fn utf8<'a>(s: &'a Bound<'_, PyString>) -> Option<&'a [u8]> {
    let f = as_utf8_and_size()?;
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` and the GIL is held (a `Bound`); `f` is the interpreter's
    // PyUnicode_AsUTF8AndSize, which returns NULL with an exception set, or a pointer to
    // `size` bytes owned by the `str` object, valid while it lives (`'a` borrows `s`) and
    // never changed (a `str` is immutable).
    unsafe {
        let p = f(s.as_ptr(), &mut size);
        if p.is_null() {
            drop(PyErr::take(s.py()));
            return None;
        }
        let n = usize::try_from(size).ok()?;
        Some(std::slice::from_raw_parts(p.cast::<u8>(), n))
    }
}

/// The `str` of the UTF-8 bytes `b`, lone surrogates accepted (`surrogatepass`); the
/// interpreter's `UnicodeDecodeError` if `b` is not such UTF-8.
pub(crate) fn str_from_utf8<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // (A slice is at most isize::MAX bytes long.)
    let len = b.len() as ffi::Py_ssize_t;
    // SAFETY: the GIL is held (`py`); `b` is `len` readable bytes and the error handler's
    // name is NUL-terminated; the call returns a new reference or NULL with an exception
    // set, which `from_owned_ptr_or_err` takes over.
    unsafe {
        let p = ffi::PyUnicode_DecodeUTF8(b.as_ptr().cast(), len, c"surrogatepass".as_ptr());
        Bound::from_owned_ptr_or_err(py, p)
    }
}
