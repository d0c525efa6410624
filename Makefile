# SPDX-License-Identifier: GPL-2.0
#
# ferrofs top-level targets. The kernel module builds out of tree against the cached kernel
# build (scripts/setup makes it; KDIR overrides it).

KDIR ?= $(shell scripts/kernel-dir)
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=1 CONFIG_FERROFS_FS=m

.PHONY: all module tools install host-test vm-test test demo clean

all: module tools

module:
	@test -n "$(KDIR)" || { echo "no kernel build: run scripts/setup" >&2; exit 1; }
	+$(KMAKE) modules

# The userspace tools, built in release mode, under their usual names in tools/bin/.
TOOLS_BIN = tools/bin
tools:
	cd tools && cargo build --release --bins
	mkdir -p $(TOOLS_BIN)
	ln -sf ../target/release/mkfs_ferrofs $(TOOLS_BIN)/mkfs.ferrofs
	ln -sf ../target/release/fsck_ferrofs $(TOOLS_BIN)/fsck.ferrofs
	ln -sf ../target/release/ferroctl $(TOOLS_BIN)/ferroctl

install: tools
	install -m 0755 tools/target/release/mkfs_ferrofs $(DESTDIR)/usr/local/sbin/mkfs.ferrofs
	install -m 0755 tools/target/release/fsck_ferrofs $(DESTDIR)/usr/local/sbin/fsck.ferrofs
	install -m 0755 tools/target/release/ferroctl $(DESTDIR)/usr/local/sbin/ferroctl

host-test:
	scripts/test --host-only

vm-test:
	scripts/test --vm-only

test:
	scripts/test

demo:
	scripts/demo

clean:
	+test -z "$(KDIR)" || $(KMAKE) clean
	cd tools && cargo clean
