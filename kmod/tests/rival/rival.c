// SPDX-License-Identifier: GPL-2.0
/*
 * A stand-in for a vendor's UOA module: it owns getsockopt option 2048, as
 * DPVS's uoa.ko does, so the tests can show that toasim refuses to load
 * beside it, with a clear message, instead of half-loading.
 */
#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/socket.h>

static int rival_get(struct sock *sk, int optval, void __user *user,
		     int *len)
{
	return -ENOENT;
}

static struct nf_sockopt_ops rival_sockopts = {
	.pf = PF_INET,
	.set_optmin = 2048,
	.set_optmax = 2048,
	.get_optmin = 2048,
	.get_optmax = 2049,
	.get = rival_get,
	.owner = THIS_MODULE,
};

static int __init rival_init(void)
{
	return nf_register_sockopt(&rival_sockopts);
}

static void __exit rival_exit(void)
{
	nf_unregister_sockopt(&rival_sockopts);
}

module_init(rival_init);
module_exit(rival_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("toasim test: owns getsockopt 2048 like a vendor UOA module");
