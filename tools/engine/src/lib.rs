// SPDX-License-Identifier: GPL-2.0

//! The ferrofs engine for userspace: the very files the kernel module compiles, from
//! `fs/ferrofs/engine/`, built without `std` so that anything the kernel could not link
//! fails here too.

#![no_std]
#![forbid(unsafe_code)]

#[path = "../../../fs/ferrofs/engine/mod.rs"]
pub mod engine;
mod platform;

pub use engine::*;
