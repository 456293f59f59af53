//! The atomics every shared word is made of, routed through one module so that a model checker
//! (loom) can replace them.

pub(crate) use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
