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

/*
 * The functions that hand a socket's getname a sockaddr_storage buffer, by
 * the names each kernel gives them (gcc's clones such as .isra.0 are matched
 * by the caller): getpeername() through __sys_getpeername (5.10-6.12) or
 * the shared do_getsockname (7.x); accept() through __sys_accept4_file
 * (5.10) or do_accept (6.x and 7.x); and the syscall wrappers, whose prefix
 * is the architecture's.
 */
#define TOASIM_STORAGE_CALLERS {					\
	"__sys_getpeername", "__do_sys_getpeername", "do_getsockname",	\
	"__sys_accept4_file", "__sys_accept4", "do_accept",		\
	"__do_sys_accept4",						\
	"__x64_sys_getpeername", "__ia32_sys_getpeername",		\
	"__x64_sys_accept4", "__x64_sys_accept",			\
	"__arm64_sys_getpeername", "__arm64_sys_accept4",		\
	"__arm64_sys_accept",						\
}

#endif /* _TOASIM_COMPAT_H */
