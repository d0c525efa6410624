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

/// `cond_resched()`: lets others run if this thread used its share of the CPU.
pub(crate) fn relax() {
    // SAFETY: called from process context only (the engine's callers: system calls, the
    // commit thread, writeback), holding no spinlock; `cond_resched` may sleep there.
    unsafe { bindings::ferrofs_cond_resched() }
}
