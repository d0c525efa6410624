// SPDX-License-Identifier: GPL-2.0

//! The background commit thread of a mounted filesystem.

use core::pin::Pin;
use core::ptr::NonNull;

use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStr;

use super::bindings;
use crate::fsops::FsInfo;

/// A kernel thread that commits every `commit=` seconds; stopped (and waited for) when
/// dropped.
pub(crate) struct CommitThread(NonNull<bindings::task_struct>);

// SAFETY: a task pointer may be used (to stop the thread) from any thread.
unsafe impl Send for CommitThread {}

impl CommitThread {
    /// Starts the thread for `info`.
    ///
    /// `info` must outlive the thread: the owner drops the thread (which waits for it to
    /// end) before `info` goes, as [`FsInfo`] does by holding it and stopping it first.
    pub(crate) fn start(name: &CStr, info: Pin<&FsInfo>) -> Result<Self> {
        let data: *const FsInfo = &*info;
        // SAFETY: `run` gets `data`, valid while the thread runs (see above); `name` is
        // NUL-terminated and copied by kthread_run.
        let task = unsafe {
            bindings::ferrofs_kthread_run(
                Some(Self::run),
                data.cast_mut().cast(),
                name.as_char_ptr(),
            )
        };
        // SAFETY: only inspects the pointer value.
        if unsafe { bindings::ferrofs_is_err(task.cast()) } {
            // SAFETY: as above.
            let err = unsafe { bindings::ferrofs_ptr_err(task.cast()) };
            return Err(Error::from_errno(i32::try_from(err).unwrap_or(-12)));
        }
        NonNull::new(task).map(Self).ok_or(ENOMEM)
    }

    /// The thread: sleep, commit, until stopped.
    ///
    /// # Safety
    ///
    /// `data` is the `FsInfo` given to `start`, alive until the thread is stopped.
    unsafe extern "C" fn run(data: *mut ffi::c_void) -> ffi::c_int {
        // SAFETY: see above; the thread only reads `FsInfo` through shared references.
        let info = unsafe { &*data.cast::<FsInfo>() };
        loop {
            // SAFETY: sleeping in a kernel thread; `kthread_stop` wakes it early.
            unsafe {
                bindings::schedule_timeout_interruptible(bindings::ferrofs_secs_to_jiffies(
                    info.commit_secs(),
                ))
            };
            // SAFETY: called from the kernel thread itself.
            if unsafe { bindings::kthread_should_stop() } {
                return 0;
            }
            if let Err(err) = info.commit() {
                pr_err!("background commit failed (errno {})\n", -err.to_errno());
            }
        }
    }
}

impl Drop for CommitThread {
    fn drop(&mut self) {
        // SAFETY: the thread was started by `start` and only ends when stopped, so the task
        // is still alive; `kthread_stop` wakes it and waits for it to return.
        unsafe { bindings::kthread_stop(self.0.as_ptr()) };
    }
}

/// `cond_resched()`: lets others run if this thread used its share of the CPU.
pub(crate) fn relax() {
    // SAFETY: called from process context only (the engine's callers: system calls, the
    // commit thread, writeback), holding no spinlock; `cond_resched` may sleep there.
    unsafe { bindings::ferrofs_cond_resched() }
}
