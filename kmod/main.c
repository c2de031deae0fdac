// SPDX-License-Identifier: GPL-2.0
/*
 * toasim: the reference server-side decoder for the client-address carriers
 * of FULLNAT gateways (TOA in TCP options, UOA next to UDP datagrams).
 * See README.md in this folder for the parameters and ABIs.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <net/net_namespace.h>
#include "compat.h"
#include "toasim.h"
#include "version.h"

static int __net_init toasim_net_init(struct net *net)
{
	int err = toasim_proc_init(net);

	if (err)
		return err;
	err = toasim_uoa_net_init(net);
	if (err)
		toasim_proc_exit(net);
	return err;
}

static void __net_exit toasim_net_exit(struct net *net)
{
	toasim_uoa_net_exit(net);
	toasim_proc_exit(net);
}

static struct pernet_operations toasim_net_ops = {
	.init = toasim_net_init,
	.exit = toasim_net_exit,
};

static int __init toasim_init(void)
{
	int err;

	err = toasim_params_init();
	if (err)
		return err;
	/* The UDP flow table exists before the getsockopt options that read it
	 * can be called (a server may be polling while the module loads).
	 */
	err = toasim_uoa_init();
	if (err)
		return err;
	/* Then the options: a vendor module owning them is reported before any
	 * /proc/net name clashes with its files.
	 */
	err = toasim_sockopt_init();
	if (err)
		goto err_uoa;
	err = toasim_toa_init();
	if (err)
		goto err_sockopt;
	err = register_pernet_subsys(&toasim_net_ops);
	if (err) {
		pr_err("cannot create /proc/net files or UDP hooks: %d\n", err);
		goto err_toa;
	}
	pr_info("loaded\n");
	return 0;

err_toa:
	toasim_toa_exit();
err_sockopt:
	toasim_sockopt_exit();
err_uoa:
	toasim_uoa_exit();
	return err;
}

/*
 * toasim_init() in reverse. Safe with connections open: nothing of the
 * module is stored in any socket, so once the hooks, probes and options are
 * gone the tables can be freed and the sockets go on with their gateway
 * addresses.
 */
static void __exit toasim_exit(void)
{
	unregister_pernet_subsys(&toasim_net_ops);
	toasim_toa_exit();
	toasim_sockopt_exit();
	toasim_uoa_exit();
	pr_info("unloaded\n");
}

module_init(toasim_init);
module_exit(toasim_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("toasim authors");
MODULE_DESCRIPTION("Client address from FULLNAT gateways' TOA and UOA carriers");
MODULE_VERSION(TOASIM_VERSION);
