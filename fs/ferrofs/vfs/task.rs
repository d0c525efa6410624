// SPDX-License-Identifier: GPL-2.0

//! The calling task's credentials.

use super::bindings;

/// `CAP_SYS_ADMIN`.
const CAP_SYS_ADMIN: i32 = 21;

/// Whether the calling task has `CAP_SYS_ADMIN` (in the initial user namespace).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials (and may audit).
    unsafe { bindings::capable(CAP_SYS_ADMIN) }
}
