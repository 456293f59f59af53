//! How a Python object travels in a message: the common builtins behind a one-byte type tag,
//! everything else pickled (by the Python half, `_dumps_pickled` and `_loads_pickled`).
//!
//! The first byte of a message says what it holds:
//!
//! - `0x80` (pickle's PROTO opcode): a plain pickle; `0x01`: a pickle with out-of-band buffers
//!   (protocol 5; framed by the Python half). Any other unknown first byte is handed to pickle
//!   too, which says what is wrong.
//! - `0x02` `bytes`, `0x03` `str` (UTF-8, lone surrogates kept): the rest of the message.
//! - `0x04` `int` in the signed 64-bit range (8 bytes, little-endian), `0x05` `float` (8 bytes),
//!   `0x06` `None`, `0x08` `bool` (1 byte).
//! - `0x07` a tuple of at most [`MAX_ITEMS`] items, each one of the above scalars: the item
//!   count (1 byte), then each item as its tag and value, where `bytes` and `str` carry their
//!   length first (u32, little-endian).
//! - `0x09` a dict of at most [`MAX_ITEMS`] entries whose keys are `str` and whose values are
//!   scalars as above: the entry count (1 byte), then per entry, in insertion order, the key's
//!   length (u32) and UTF-8, and the value as a tuple's item.
//!
//! Only the exact types travel this way: a subclass (an `IntEnum`, a `str` subclass, an
//! `OrderedDict`), an `int` outside 64 bits, a longer tuple or dict or one holding anything
//! else is pickled, so what comes out is always what went in.

use std::cell::Cell;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};

use crate::pystr;

pub(crate) const T_BYTES: u8 = 0x02;
pub(crate) const T_STR: u8 = 0x03;
pub(crate) const T_INT: u8 = 0x04;
pub(crate) const T_FLOAT: u8 = 0x05;
pub(crate) const T_NONE: u8 = 0x06;
pub(crate) const T_TUPLE: u8 = 0x07;
pub(crate) const T_BOOL: u8 = 0x08;
pub(crate) const T_DICT: u8 = 0x09;

/// The most items a tuple (entries a dict) may have to travel without pickle.
pub(crate) const MAX_ITEMS: usize = 16;

thread_local! {
    /// A buffer to encode into, reused by the calls of this thread (taken out while in use,
    /// so a call made from inside pickle, by an object's `__reduce__`, gets a fresh one).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// This thread's scratch buffer, emptied, until dropped.
pub(crate) struct Scratch(Vec<u8>);

impl Scratch {
    pub(crate) fn take() -> Scratch {
        let mut buf = SCRATCH.take();
        buf.clear();
        Scratch(buf)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // (A buffer grown by a large message is let go.)
        if self.0.capacity() <= 64 * 1024 {
            SCRATCH.set(std::mem::take(&mut self.0));
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// The UTF-8 of a `str`: borrowed from the object ([`pystr::utf8`]), or in a `bytes` object
/// made for it.
enum Utf8<'a, 'py> {
    Borrowed(&'a [u8]),
    Made(Bound<'py, PyBytes>),
}

impl Utf8<'_, '_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Utf8::Borrowed(b) => b,
            Utf8::Made(b) => b.as_bytes(),
        }
    }
}

/// The UTF-8 bytes of `s`, lone surrogates kept (`surrogatepass`, as the Python half did).
fn utf8<'a, 'py>(s: &'a Bound<'py, PyString>) -> PyResult<Utf8<'a, 'py>> {
    if let Some(b) = pystr::utf8(s) {
        return Ok(Utf8::Borrowed(b));
    }
    // (Where the look-up found the function, it failed only for lone surrogates.)
    if !pystr::borrows_utf8()
        && let Ok(b) = s.encode_utf8()
    {
        return Ok(Utf8::Made(b));
    }
    Ok(Utf8::Made(
        s.call_method1("encode", ("utf-8", "surrogatepass"))?
            .cast_into::<PyBytes>()?,
    ))
}

/// A scalar item: writes its tag and value (`bytes` and `str` with their length if `sized`);
/// `Ok(false)` if `obj` is not one of the tagged scalars.
fn scalar(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, sized: bool) -> PyResult<bool> {
    let put_sized = |out: &mut Vec<u8>, tag: u8, data: &[u8]| -> bool {
        out.push(tag);
        if sized {
            match u32::try_from(data.len()) {
                Ok(n) => out.extend_from_slice(&n.to_le_bytes()),
                Err(_) => return false,
            }
        }
        out.extend_from_slice(data);
        true
    };
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(put_sized(out, T_BYTES, b.as_bytes()));
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        let b = utf8(s)?;
        return Ok(put_sized(out, T_STR, b.as_bytes()));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return Ok(match obj.extract::<i64>() {
            Ok(v) => {
                out.push(T_INT);
                out.extend_from_slice(&v.to_le_bytes());
                true
            }
            Err(_) => false, // beyond 64 bits: pickled
        });
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        out.push(T_FLOAT);
        out.extend_from_slice(&f.value().to_le_bytes());
        return Ok(true);
    }
    if obj.is_none() {
        out.push(T_NONE);
        return Ok(true);
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        out.push(T_BOOL);
        out.push(u8::from(b.is_true()));
        return Ok(true);
    }
    Ok(false)
}

/// Encodes `obj` into `out` (emptied first) if it is one of the types that travel without
/// pickle; `Ok(false)` (and `out` in any state) if it must be pickled.
pub(crate) fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<bool> {
    out.clear();
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        let n = t.len();
        if n > MAX_ITEMS {
            return Ok(false);
        }
        out.push(T_TUPLE);
        out.push(n as u8);
        for item in t.iter() {
            if !scalar(&item, out, true)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        let n = d.len();
        if n > MAX_ITEMS {
            return Ok(false);
        }
        out.push(T_DICT);
        out.push(n as u8);
        for (k, v) in d.iter() {
            let Ok(k) = k.cast_exact::<PyString>() else {
                return Ok(false);
            };
            let k = utf8(k)?;
            let Ok(len) = u32::try_from(k.as_bytes().len()) else {
                return Ok(false);
            };
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            if !scalar(&v, out, true)? {
                return Ok(false);
            }
        }
        // (Reading it runs no Python code, its keys being exact `str`s: no other thread
        // changes it meanwhile.)
        return Ok(true);
    }
    scalar(obj, out, false)
}

fn damaged(what: &str) -> PyErr {
    PyValueError::new_err(format!("a damaged shmq object message: {what}"))
}

/// Reads `n` bytes at `*at`, moving it on.
fn take<'a>(data: &'a [u8], at: &mut usize, n: usize) -> PyResult<&'a [u8]> {
    let s = at
        .checked_add(n)
        .and_then(|end| data.get(*at..end))
        .ok_or_else(|| damaged("it ends inside an item"))?;
    *at += n;
    Ok(s)
}

fn str_from<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // (Lone surrogates were sent with `surrogatepass`.)
    pystr::str_from_utf8(py, b)
}

fn four(b: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    a
}

fn eight(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    a
}

/// Decodes one scalar of `tag` at `*at`; `sized`: `bytes` and `str` carry their length.
fn scalar_from<'py>(
    py: Python<'py>,
    tag: u8,
    data: &[u8],
    at: &mut usize,
    sized: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let rest_or_sized = |at: &mut usize| -> PyResult<&[u8]> {
        if sized {
            let n = u32::from_le_bytes(four(take(data, at, 4)?));
            take(data, at, n as usize)
        } else {
            let s = &data[*at..];
            *at = data.len();
            Ok(s)
        }
    };
    Ok(match tag {
        T_BYTES => PyBytes::new(py, rest_or_sized(at)?).into_any(),
        T_STR => str_from(py, rest_or_sized(at)?)?,
        T_INT => i64::from_le_bytes(eight(take(data, at, 8)?))
            .into_pyobject(py)?
            .into_any(),
        T_FLOAT => PyFloat::new(py, f64::from_le_bytes(eight(take(data, at, 8)?))).into_any(),
        T_NONE => py.None().into_bound(py),
        T_BOOL => PyBool::new(py, take(data, at, 1)?[0] != 0)
            .to_owned()
            .into_any(),
        other => return Err(damaged(&format!("unknown item tag {other:#04x}"))),
    })
}

/// Decodes a message made by [`encode`]; `Ok(None)` if it is a pickle (or not tagged), for
/// the caller to unpickle.
pub(crate) fn decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(&tag) = data.first() else {
        return Ok(None);
    };
    let mut at = 1;
    match tag {
        T_BYTES | T_STR | T_INT | T_FLOAT | T_NONE | T_BOOL => {
            let v = scalar_from(py, tag, data, &mut at, false)?;
            if at != data.len() {
                return Err(damaged("bytes after its value"));
            }
            Ok(Some(v))
        }
        T_TUPLE => {
            let n = take(data, &mut at, 1)?[0] as usize;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let t = take(data, &mut at, 1)?[0];
                items.push(scalar_from(py, t, data, &mut at, true)?);
            }
            if at != data.len() {
                return Err(damaged("bytes after its last item"));
            }
            Ok(Some(PyTuple::new(py, items)?.into_any()))
        }
        T_DICT => {
            let n = take(data, &mut at, 1)?[0] as usize;
            let d = PyDict::new(py);
            for _ in 0..n {
                let len = u32::from_le_bytes(four(take(data, &mut at, 4)?));
                let k = str_from(py, take(data, &mut at, len as usize)?)?;
                let t = take(data, &mut at, 1)?[0];
                d.set_item(k, scalar_from(py, t, data, &mut at, true)?)?;
            }
            if at != data.len() {
                return Err(damaged("bytes after its last entry"));
            }
            if d.len() != n {
                return Err(damaged("a key twice"));
            }
            Ok(Some(d.into_any()))
        }
        _ => Ok(None),
    }
}
