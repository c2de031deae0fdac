// SPDX-License-Identifier: GPL-2.0
/*
 * The getsockopt ABIs of include/uapi/toasim.h, registered with
 * nf_register_sockopt() (the supported way to add IPPROTO_IP options).
 * Two modules cannot own the same option numbers: loading beside a vendor's
 * TOA/UOA module fails with EBUSY and says which range is taken.
 *
 * The output is built in a zeroed structure and copied whole, so no kernel
 * memory reaches user space.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <linux/netfilter.h>
#include <linux/socket.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <net/sock.h>
#include <net/inet_sock.h>
#include <net/tcp_states.h>
#include <net/ipv6.h>
#include "include/uapi/toasim.h"
#include "toasim.h"

#define CONNECTED_STATES (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT | \
			  TCPF_FIN_WAIT1 | TCPF_FIN_WAIT2 | TCPF_CLOSING | \
			  TCPF_LAST_ACK | TCPF_SYN_RECV)

static bool is_tcp(const struct sock *sk)
{
	return sk->sk_type == SOCK_STREAM && sk->sk_protocol == IPPROTO_TCP;
}

static bool connected(const struct sock *sk)
{
	return (1 << READ_ONCE(sk->sk_state)) & CONNECTED_STATES;
}

/* The socket's own peer (the gateway), IPv4-mapped ones as IPv4. */
static void own_peer(const struct sock *sk, struct toasim_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->has_port = true;
	a->port = inet_sk(sk)->inet_dport;
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6 &&
	    !ipv6_addr_v4mapped(&sk->sk_v6_daddr)) {
		a->family = 6;
		a->addr = sk->sk_v6_daddr;
		return;
	}
#endif
	a->family = 4;
	a->addr.s6_addr32[0] = inet_sk(sk)->inet_daddr;
}

static int put_out(void __user *user, int *len, const void *out, int size)
{
	if (copy_to_user(user, out, size))
		return -EFAULT;
	*len = size;
	return 0;
}

/* A client address into a 16-byte field, IPv4 in its first 4 bytes. */
static void put_addr16(u8 *field, const struct toasim_addr *c)
{
	memset(field, 0, 16);
	memcpy(field, &c->addr, c->family == 4 ? 4 : 16);
}

static int af_of(const struct toasim_addr *c)
{
	return c->family == 4 ? AF_INET : AF_INET6;
}

static int get_toa_ctl(struct sock *sk, void __user *user, int *len)
{
	struct toasim_toa_ctl out;
	struct toasim_addr c, peer;

	if (*len < (int)sizeof(out) || !is_tcp(sk))
		return -EINVAL;
	if (!connected(sk))
		return -ENOTCONN;
	own_peer(sk, &peer);
	memset(&out, 0, sizeof(out));
	if (toasim_sock_get(sk, &c)) {
		out.toa_set = 1;
		if (!c.has_port)
			c.port = peer.port;
	} else {
		c = peer;
	}
	out.family = af_of(&c);
	memcpy(out.addr.ip6, &c.addr, c.family == 4 ? 4 : 16);
	out.port = c.port;
	return put_out(user, len, &out, sizeof(out));
}

static int get_toa_lookup(struct sock *sk, void __user *user, int *len)
{
	struct toasim_toa_lookup out;
	struct toasim_addr c;

	if (*len < (int)sizeof(out) || !is_tcp(sk))
		return -EINVAL;
	if (!connected(sk))
		return -ENOTCONN;
	if (sk->sk_family != AF_INET || !toasim_sock_get(sk, &c) ||
	    c.family != 6)
		return -EINVAL;
	memset(&out, 0, sizeof(out));
	memcpy(out.saddr, &c.addr, 16);
	out.port = c.has_port ? c.port : inet_sk(sk)->inet_dport;
	return put_out(user, len, &out, sizeof(out));
}

static int get_ttm_peer(struct sock *sk, void __user *user, int *len)
{
	struct toasim_ttm_peer out;
	struct toasim_addr c;

	if (*len < (int)sizeof(out) || !is_tcp(sk))
		return -EINVAL;
	if (!connected(sk))
		return -ENOTCONN;
	if (!toasim_sock_get(sk, &c))
		return -EINVAL;
	memset(&out, 0, sizeof(out));
	out.af = af_of(&c);
	out.port = c.has_port ? c.port : inet_sk(sk)->inet_dport;
	memcpy(out.addr.all, &c.addr, c.family == 4 ? 4 : 16);
	return put_out(user, len, &out, sizeof(out));
}

/* A lookup's addresses as a flow key; IPv4-mapped pairs become IPv4. */
static int uoa_key(unsigned int af, const u8 *saddr, const u8 *daddr,
		   __be16 sport, __be16 dport, struct toasim_flow_key *key)
{
	memset(key, 0, sizeof(*key));
	key->sport = sport;
	key->dport = dport;
	if (af == AF_INET) {
		key->family = 4;
		memcpy(&key->saddr, saddr, 4);
		memcpy(&key->daddr, daddr, 4);
		return 0;
	}
	if (af != AF_INET6)
		return -EINVAL;
	memcpy(&key->saddr, saddr, 16);
	memcpy(&key->daddr, daddr, 16);
	if (ipv6_addr_v4mapped(&key->saddr) &&
	    ipv6_addr_v4mapped(&key->daddr)) {
		key->family = 4;
		key->saddr.s6_addr32[0] = key->saddr.s6_addr32[3];
		key->daddr.s6_addr32[0] = key->daddr.s6_addr32[3];
		key->saddr.s6_addr32[3] = 0;
		key->daddr.s6_addr32[3] = 0;
		key->saddr.s6_addr32[2] = 0;
		key->daddr.s6_addr32[2] = 0;
		return 0;
	}
	key->family = 6;
	return 0;
}

/* The client of a UDP flow, counted as success or miss. */
static int uoa_lookup(unsigned int af, const u8 *saddr, const u8 *daddr,
		      __be16 sport, __be16 dport, struct toasim_addr *c)
{
	struct toasim_flow_key key;

	if (uoa_key(af, saddr, daddr, sport, dport, &key)) {
		toasim_count(UOA_STAT_INVALID);
		return -EINVAL;
	}
	if (!toasim_flow_get(toasim_uoa_flows, &key, c, false)) {
		toasim_count(UOA_STAT_MISS);
		return -ENOENT;
	}
	toasim_count(UOA_STAT_SUCCESS);
	return 0;
}

/*
 * Both forms are read from user space whole and written back whole: the
 * request part is the caller's own bytes, the reply part is set here, and
 * the packed layouts have no padding, so nothing of the kernel's goes out.
 */
static int get_uoa_noa(void __user *user, int *len)
{
	struct toasim_uoa_noa p;
	struct toasim_addr c;
	int err;

	if (copy_from_user(&p, user, sizeof(p)))
		return -EFAULT;
	err = uoa_lookup(p.af, p.saddr, p.daddr, p.sport, p.dport, &c);
	if (err)
		return err;
	put_addr16(p.real_saddr, &c);
	p.real_sport = c.port;
	p.real_af = af_of(&c);
	return put_out(user, len, &p, sizeof(p));
}

static int get_uoa_dpvs(void __user *user, int *len)
{
	struct toasim_uoa_dpvs p;
	struct toasim_addr c;
	int err;

	if (copy_from_user(&p, user, sizeof(p)))
		return -EFAULT;
	err = uoa_lookup(p.af, p.saddr, p.daddr, p.sport, p.dport, &c);
	if (err)
		return err;
	put_addr16(p.real_saddr, &c);
	p.real_sport = c.port;
	p.real_af = af_of(&c);
	return put_out(user, len, &p, sizeof(p));
}

static int get_uoa(struct sock *sk, void __user *user, int *len)
{
	if (sk->sk_protocol == IPPROTO_UDP) {
		if (*len == (int)sizeof(struct toasim_uoa_noa))
			return get_uoa_noa(user, len);
		if (*len == (int)sizeof(struct toasim_uoa_dpvs))
			return get_uoa_dpvs(user, len);
	}
	toasim_count(UOA_STAT_INVALID);
	return -EINVAL;
}

static int sockopt_get(struct sock *sk, int optval, void __user *user,
		       int *len)
{
	switch (optval) {
	case TOASIM_SO_TOA_CTL:
		return get_toa_ctl(sk, user, len);
	case TOASIM_SO_TOA_LOOKUP:
		return get_toa_lookup(sk, user, len);
	case TOASIM_SO_TTM_PEER:
		return get_ttm_peer(sk, user, len);
	case TOASIM_SO_UOA:
		return get_uoa(sk, user, len);
	}
	return -ENOPROTOOPT;
}

/* Read-only options: each set range is empty (min == max). */
static struct nf_sockopt_ops sockopts[] = {
	{
		.pf = PF_INET,
		.set_optmin = TOASIM_SO_TTM_PEER,
		.set_optmax = TOASIM_SO_TTM_PEER,
		.get_optmin = TOASIM_SO_TTM_PEER,
		.get_optmax = TOASIM_SO_TTM_PEER + 1,
		.get = sockopt_get,
		.owner = THIS_MODULE,
	},
	{
		.pf = PF_INET,
		.set_optmin = TOASIM_SO_UOA,
		.set_optmax = TOASIM_SO_UOA,
		.get_optmin = TOASIM_SO_UOA,
		.get_optmax = TOASIM_SO_TOA_CTL + 1,
		.get = sockopt_get,
		.owner = THIS_MODULE,
	},
	{
		.pf = PF_INET,
		.set_optmin = TOASIM_SO_TOA_LOOKUP,
		.set_optmax = TOASIM_SO_TOA_LOOKUP,
		.get_optmin = TOASIM_SO_TOA_LOOKUP,
		.get_optmax = TOASIM_SO_TOA_LOOKUP + 1,
		.get = sockopt_get,
		.owner = THIS_MODULE,
	},
};

int toasim_sockopt_init(void)
{
	int i, err;

	for (i = 0; i < ARRAY_SIZE(sockopts); i++) {
		err = nf_register_sockopt(&sockopts[i]);
		if (err) {
			if (err == -EBUSY)
				pr_err("getsockopt options %d-%d are already registered by another module (a TOA/UOA module such as toa.ko or uoa.ko?): unload it first\n",
				       sockopts[i].get_optmin,
				       sockopts[i].get_optmax - 1);
			else
				pr_err("cannot register getsockopt options %d-%d: %d\n",
				       sockopts[i].get_optmin,
				       sockopts[i].get_optmax - 1, err);
			while (--i >= 0)
				nf_unregister_sockopt(&sockopts[i]);
			return err;
		}
	}
	return 0;
}

void toasim_sockopt_exit(void)
{
	int i;

	for (i = ARRAY_SIZE(sockopts) - 1; i >= 0; i--)
		nf_unregister_sockopt(&sockopts[i]);
}
