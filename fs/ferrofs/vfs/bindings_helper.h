/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers of the VFS API ferrofs calls that the kernel crate's own bindings
 * do not cover. Read by the module's bindgen run (see ../Kbuild).
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/buffer_head.h>
#include <linux/crc32c.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/exportfs.h>
#include <linux/fiemap.h>
#include <linux/fileattr.h>
#include <linux/fsmap.h>
#include <linux/kthread.h>
#include <linux/pagemap.h>
#include <linux/posix_acl.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/statfs.h>
#include <linux/writeback.h>
#include <linux/xattr.h>

#include "../shim.h"
