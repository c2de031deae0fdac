/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every kernel-version difference the module meets, in one place, detected
 * by feature (header present, symbol defined) rather than by version number
 * where the kernel allows it. Tested on 5.10, 6.1, 6.12 and 7.2.
 */
#ifndef _TOASIM_COMPAT_H
#define _TOASIM_COMPAT_H

#include <linux/kprobes.h>

#ifndef CONFIG_KRETPROBES
#error "toasim needs a kernel with CONFIG_KRETPROBES"
#endif

#ifndef CONFIG_NETFILTER
#error "toasim needs a kernel with CONFIG_NETFILTER"
#endif

/* 6.12 moved the unaligned accessors out of asm/. */
#if __has_include("linux/unaligned.h")
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

/*
 * Probe handlers read the probed function's arguments from the registers;
 * regs_get_kernel_argument() knows the calling convention (x86-64, arm64,
 * and the others that define it).
 */
#define toasim_arg(regs, n) regs_get_kernel_argument((regs), (n))

/*
 * Where a kretprobed function returns to: in the instance itself, unless
 * kretprobes run on rethook (5.18 and later, where configured), which keeps
 * it in the rethook node behind an accessor.
 */
#ifdef CONFIG_KRETPROBE_ON_RETHOOK
#define toasim_kretprobe_retaddr(ri) get_kretprobe_retaddr(ri)
#else
#define toasim_kretprobe_retaddr(ri) ((unsigned long)(ri)->ret_addr)
#endif

#endif /* _TOASIM_COMPAT_H */
