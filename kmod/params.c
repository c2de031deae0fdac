// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters. Each is checked once at load; a bad value fails the
 * load with a message naming the parameter, so a typo never runs silently
 * with defaults.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include "toasim.h"

/*
 * Only toasim's gateway-side documentation ranges by default: loaded on a
 * real server without configuration, the module then trusts no address that
 * can exist on the internet, so no client can spoof its address with a
 * home-made TOA. Real deployments list their gateways' local address pools;
 * "any" restores the vendors' accept-everything behaviour.
 */
static char *trusted = "192.0.2.0/24,2001:db8:5::/64";
module_param(trusted, charp, 0444);
MODULE_PARM_DESC(trusted,
		 "gateway source ranges whose TOA/UOA carriers are believed: CIDR list, or \"any\" (default 192.0.2.0/24,2001:db8:5::/64)");

static char *tcp_kinds = "254,253,200";
module_param(tcp_kinds, charp, 0444);
MODULE_PARM_DESC(tcp_kinds,
		 "TCP option kinds read as port+address TOA (lengths 8, 16, 20) (default 254,253,200)");

static int ttm_kind = 254;
module_param(ttm_kind, int, 0444);
MODULE_PARM_DESC(ttm_kind,
		 "TCP option kind of Kingsoft's 22-byte struct ttm_peer TOA, -1 to ignore it (default 254)");

static char *ttm_af_order = "host";
module_param(ttm_af_order, charp, 0444);
MODULE_PARM_DESC(ttm_af_order,
		 "byte order of the af field in the ttm TOA: host or network (default host)");

static int cdn_kind = 28;
module_param(cdn_kind, int, 0444);
MODULE_PARM_DESC(cdn_kind,
		 "TCP option kind of the version+address TOA sent on the SYN (Aliyun CDN), -1 to ignore it (default 28)");

static char *v6_on_v4 = "keep";
module_param(v6_on_v4, charp, 0444);
MODULE_PARM_DESC(v6_on_v4,
		 "getpeername() of an IPv6 client on an IPv4 socket: keep (the gateway's address, as DPVS; read it with optname 4096) or inet6 (an AF_INET6 address, as Tencent) (default keep)");

unsigned int toasim_uoa_timeout_secs = 360;
module_param_named(uoa_timeout, toasim_uoa_timeout_secs, uint, 0644);
MODULE_PARM_DESC(uoa_timeout,
		 "seconds a UDP flow's client address is kept after its last carrier (default 360)");

unsigned int toasim_syn_timeout_secs = 30;
module_param_named(syn_timeout, toasim_syn_timeout_secs, uint, 0644);
MODULE_PARM_DESC(syn_timeout,
		 "seconds a TOA seen on a SYN waits for the handshake to complete (default 30)");

unsigned int toasim_max_flows = 65536;
module_param_named(max_flows, toasim_max_flows, uint, 0444);
MODULE_PARM_DESC(max_flows,
		 "most UDP flows (and, separately, pending SYNs) remembered at once (default 65536)");

struct toasim_kinds toasim_kinds;
bool toasim_v6_on_v4_inet6;

static int parse_kind(const char *name, int v)
{
	if (v < -1 || v > 255 || (v >= 0 && v <= 1)) {
		pr_err("%s=%d: want an option kind 2..255, or -1\n", name, v);
		return -EINVAL;
	}
	return 0;
}

static int parse_kind_list(const char *spec)
{
	char buf[128];
	char *cur = buf, *tok;
	unsigned int n = 0;

	if (strscpy(buf, spec, sizeof(buf)) < 0) {
		pr_err("tcp_kinds is too long\n");
		return -EINVAL;
	}
	bitmap_zero(toasim_kinds.port_addr, 256);
	while ((tok = strsep(&cur, ",")) != NULL) {
		unsigned int kind;

		if (*tok == '\0')
			continue;
		if (kstrtouint(tok, 10, &kind) || kind < 2 || kind > 255) {
			pr_err("tcp_kinds: \"%s\" is not an option kind 2..255\n",
			       tok);
			return -EINVAL;
		}
		set_bit(kind, toasim_kinds.port_addr);
		n++;
	}
	if (n == 0)
		pr_warn("tcp_kinds is empty: port+address TOAs are ignored\n");
	return 0;
}

int toasim_params_init(void)
{
	int err;

	err = toasim_trust_parse(trusted);
	if (err)
		return err;
	err = parse_kind_list(tcp_kinds);
	if (err)
		return err;
	err = parse_kind("ttm_kind", ttm_kind);
	if (err)
		return err;
	err = parse_kind("cdn_kind", cdn_kind);
	if (err)
		return err;
	toasim_kinds.ttm_kind = ttm_kind;
	toasim_kinds.cdn_kind = cdn_kind;

	if (!strcmp(ttm_af_order, "host")) {
		toasim_kinds.ttm_af_network_order = false;
	} else if (!strcmp(ttm_af_order, "network")) {
		toasim_kinds.ttm_af_network_order = true;
	} else {
		pr_err("ttm_af_order=%s: want host or network\n", ttm_af_order);
		return -EINVAL;
	}

	if (!strcmp(v6_on_v4, "keep")) {
		toasim_v6_on_v4_inet6 = false;
	} else if (!strcmp(v6_on_v4, "inet6")) {
		toasim_v6_on_v4_inet6 = true;
	} else {
		pr_err("v6_on_v4=%s: want keep or inet6\n", v6_on_v4);
		return -EINVAL;
	}

	if (toasim_max_flows == 0 || toasim_max_flows > (1U << 22)) {
		pr_err("max_flows=%u: want 1..%u\n",
		       toasim_max_flows, 1U << 22);
		return -EINVAL;
	}
	return 0;
}
