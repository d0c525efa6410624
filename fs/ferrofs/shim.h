/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers for kernel functions that are static inline (or macros) and so
 * have no symbol Rust could call. Each one only forwards its arguments.
 */
#ifndef FERROFS_SHIM_H
#define FERROFS_SHIM_H

#include <linux/types.h>

struct buffer_head;
struct super_block;

struct buffer_head *ferrofs_sb_bread(struct super_block *sb, sector_t block);
void ferrofs_brelse(struct buffer_head *bh);
const char *ferrofs_sb_id(const struct super_block *sb);

#endif /* FERROFS_SHIM_H */
