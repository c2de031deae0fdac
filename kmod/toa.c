// SPDX-License-Identifier: GPL-2.0
/*
 * The TCP side. Supported mechanisms only: kprobes and kretprobes on
 * exported, stable functions, no write to any ops table.
 *
 *  tcp_conn_request        the SYN: a TOA there (lvs, aliyun-cdn) is kept
 *                          by 4-tuple until the handshake completes;
 *  tcp_v4/v6_syn_recv_sock the handshake-completing segment creates the
 *                          child socket: its TOA (or the SYN's) is bound
 *                          to the child;
 *  tcp_v4_destroy_sock     every TCP socket's end (IPv6 ones too): the
 *                          binding goes; __sk_destruct catches the few
 *                          freed without being destroyed;
 *  inet_getname, inet6_getname
 *                          getpeername() and accept(): the client replaces
 *                          the gateway in the returned address.
 */
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/skbuff.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/net.h>
#include <linux/sched.h>
#include <linux/kallsyms.h>
#include <linux/string.h>
#include <net/sock.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include "compat.h"
#include "toasim.h"

static struct toasim_flow_table *syn_flows;

unsigned int toasim_syn_pending(void)
{
	return syn_flows ? toasim_flow_count(syn_flows) : 0;
}

/* The 4-tuple of a packet as a flow key (source = the gateway side). */
static bool skb_flow_key(const struct sk_buff *skb, const struct tcphdr *th,
			 struct toasim_flow_key *key, bool *trusted)
{
	memset(key, 0, sizeof(*key));
	key->sport = th->source;
	key->dport = th->dest;
	if (skb->protocol == htons(ETH_P_IP)) {
		const struct iphdr *iph = ip_hdr(skb);

		key->family = 4;
		key->saddr.s6_addr32[0] = iph->saddr;
		key->daddr.s6_addr32[0] = iph->daddr;
		*trusted = toasim_trusted4(iph->saddr);
		return true;
	}
	if (skb->protocol == htons(ETH_P_IPV6)) {
		const struct ipv6hdr *ip6 = ipv6_hdr(skb);

		key->family = 6;
		key->saddr = ip6->saddr;
		key->daddr = ip6->daddr;
		*trusted = toasim_trusted6(&ip6->saddr);
		return true;
	}
	return false;
}

/*
 * Reads the TOA of a segment the TCP receive path has already validated:
 * tcp_v4_rcv()/tcp_v6_rcv() pulled the whole header, options included,
 * into the linear area before any of the probed functions runs.
 */
static enum toasim_parse_result segment_toa(const struct sk_buff *skb,
					    struct toasim_flow_key *key,
					    bool *trusted,
					    struct toasim_addr *client)
{
	const struct tcphdr *th = tcp_hdr(skb);
	unsigned int hlen = th->doff * 4;

	if (!skb_flow_key(skb, th, key, trusted))
		return TOASIM_PARSE_NONE;
	if (hlen < sizeof(*th) ||
	    skb_transport_offset(skb) + hlen > skb_headlen(skb))
		return TOASIM_PARSE_MALFORMED;
	return toasim_parse_tcp_options((const u8 *)(th + 1),
					hlen - sizeof(*th), &toasim_kinds,
					client);
}

/* ---- tcp_conn_request(rsk_ops, af_ops, sk, skb): the SYN ---- */

static int conn_request_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)toasim_arg(regs, 3);
	struct toasim_flow_key key;
	struct toasim_addr client;
	bool trusted = false;

	if (!skb || !tcp_hdr(skb)->syn)
		return 0;
	switch (segment_toa(skb, &key, &trusted, &client)) {
	case TOASIM_PARSE_NONE:
		return 0;
	case TOASIM_PARSE_MALFORMED:
		toasim_count(TOA_STAT_MALFORMED);
		return 0;
	case TOASIM_PARSE_FOUND:
		break;
	}
	if (!trusted) {
		toasim_count(TOA_STAT_UNTRUSTED);
		return 0;
	}
	if (toasim_flow_put(syn_flows, &key, &client) == 0)
		toasim_count(TOA_STAT_SYN_SAVED);
	return 0;
}

static struct kprobe conn_request_probe = {
	.symbol_name = "tcp_conn_request",
	.pre_handler = conn_request_pre,
};

/* ---- tcp_v{4,6}_syn_recv_sock(sk, skb, req, ...) -> child ---- */

struct syn_recv_data {
	bool have;
	struct toasim_addr client;
};

static void syn_recv_entry_common(struct sk_buff *skb,
				  struct syn_recv_data *d)
{
	struct toasim_flow_key key;
	struct toasim_addr syn_client;
	bool trusted = false;
	enum toasim_parse_result r;

	d->have = false;
	r = segment_toa(skb, &key, &trusted, &d->client);
	/* The SYN's entry is used up either way: it must not outlive this. */
	if (toasim_flow_get(syn_flows, &key, &syn_client, true) &&
	    r == TOASIM_PARSE_NONE) {
		d->client = syn_client;
		r = TOASIM_PARSE_FOUND;
		trusted = true;	/* checked when it was saved */
	}
	switch (r) {
	case TOASIM_PARSE_FOUND:
		if (trusted) {
			d->have = true;
			return;
		}
		toasim_count(TOA_STAT_UNTRUSTED);
		break;
	case TOASIM_PARSE_MALFORMED:
		toasim_count(TOA_STAT_MALFORMED);
		break;
	case TOASIM_PARSE_NONE:
		break;
	}
}

static int syn_recv4_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)toasim_arg(regs, 1);

	syn_recv_entry_common(skb, (struct syn_recv_data *)ri->data);
	return 0;
}

/* A v4 segment to a v6 listener is handed to tcp_v4_syn_recv_sock(), whose
 * own probe binds the child: skip it here.
 */
static int syn_recv6_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)toasim_arg(regs, 1);
	struct syn_recv_data *d = (struct syn_recv_data *)ri->data;

	if (skb->protocol != htons(ETH_P_IPV6)) {
		d->have = false;
		return 1;	/* no return handler for this call */
	}
	syn_recv_entry_common(skb, d);
	return 0;
}

static int syn_recv_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct syn_recv_data *d = (struct syn_recv_data *)ri->data;
	struct sock *child = (struct sock *)regs_return_value(regs);

	if (!child)
		return 0;
	if (d->have && toasim_sock_put(child, &d->client) == 0) {
		toasim_count(TOA_STAT_SYN_RECV_SOCK_TOA);
		return 0;
	}
	toasim_count(TOA_STAT_SYN_RECV_SOCK_NO_TOA);
	return 0;
}

static struct kretprobe syn_recv4_probe = {
	.kp.symbol_name = "tcp_v4_syn_recv_sock",
	.entry_handler = syn_recv4_entry,
	.handler = syn_recv_ret,
	.data_size = sizeof(struct syn_recv_data),
	.maxactive = 64,
};

static struct kretprobe syn_recv6_probe = {
	.kp.symbol_name = "tcp_v6_syn_recv_sock",
	.entry_handler = syn_recv6_entry,
	.handler = syn_recv_ret,
	.data_size = sizeof(struct syn_recv_data),
	.maxactive = 64,
};

/* ---- tcp_v4_destroy_sock(sk): the end of every TCP socket ---- */

static int destroy_pre(struct kprobe *p, struct pt_regs *regs)
{
	toasim_sock_forget((const struct sock *)toasim_arg(regs, 0));
	return 0;
}

static struct kprobe destroy_probe = {
	.symbol_name = "tcp_v4_destroy_sock",
	.pre_handler = destroy_pre,
};

/*
 * A child that loses the race for its request (inet_csk_complete_hashdance
 * undoing it) is released by sock_put() without ever being destroyed.
 * __sk_destruct(&sk->sk_rcu) is where every socket's memory is given back
 * (directly or after an RCU grace period), so no entry outlives its socket.
 * Not sk_free(): despite its name, TCP calls it on live sockets to drop a
 * write-memory reference (tcp_wfree).
 */
static int destruct_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct rcu_head *head = (struct rcu_head *)toasim_arg(regs, 0);

	toasim_sock_forget(container_of(head, struct sock, sk_rcu));
	return 0;
}

static struct kprobe destruct_probe = {
	.symbol_name = "__sk_destruct",
	.pre_handler = destruct_pre,
};

/* ---- inet_getname / inet6_getname(sock, uaddr, peer) -> length ---- */

struct getname_data {
	struct socket *sock;
	struct sockaddr *uaddr;
};

static int getname_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct getname_data *d = (struct getname_data *)ri->data;
	struct socket *sock = (struct socket *)toasim_arg(regs, 0);
	int peer = (int)toasim_arg(regs, 2);

	if (!peer || !sock || !sock->sk ||
	    sock->sk->sk_protocol != IPPROTO_TCP) {
		toasim_count(TOA_STAT_GETNAME_TOA_BYPASS);
		return 1;
	}
	d->sock = sock;
	d->uaddr = (struct sockaddr *)toasim_arg(regs, 1);
	return 0;
}

/* The client of the socket, or false (counted) when there is none to show. */
static bool getname_client(struct sock *sk, struct toasim_addr *c)
{
	if (toasim_sock_get(sk, c))
		return true;
	toasim_count(toasim_sock_known(sk) ? TOA_STAT_GETNAME_TOA_MISMATCH :
					     TOA_STAT_GETNAME_TOA_EMPTY);
	return false;
}

/*
 * Only callers whose address buffer is a sockaddr_storage may get a
 * sockaddr_in6 from an IPv4 socket; an in-kernel kernel_getpeername() may
 * pass a bare sockaddr_in. compat.h lists them by kernel.
 */
static const char *const storage_callers[] = TOASIM_STORAGE_CALLERS;

static bool caller_has_storage(struct kretprobe_instance *ri)
{
	char name[KSYM_SYMBOL_LEN];
	unsigned int i;
	size_t n;

	if (current->flags & PF_KTHREAD)
		return false;
	sprint_symbol_no_offset(name, toasim_kretprobe_retaddr(ri));
	for (i = 0; i < ARRAY_SIZE(storage_callers); i++) {
		n = strlen(storage_callers[i]);
		/* gcc's clones: do_accept.isra.0, __sys_getpeername.constprop.0 */
		if (!strncmp(name, storage_callers[i], n) &&
		    (name[n] == '\0' || name[n] == '.'))
			return true;
	}
	return false;
}

static int getname4_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct getname_data *d = (struct getname_data *)ri->data;
	struct sockaddr_in *sin = (struct sockaddr_in *)d->uaddr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)d->uaddr;
	struct toasim_addr c;

	if ((long)regs_return_value(regs) < (long)sizeof(*sin))
		return 0;
	if (!getname_client(d->sock->sk, &c))
		return 0;
	if (c.family == 4) {
		sin->sin_addr.s_addr = c.addr.s6_addr32[0];
		if (c.has_port)
			sin->sin_port = c.port;
		toasim_count(TOA_STAT_GETNAME_TOA_OK);
		return 0;
	}
	/* An IPv6 client on an IPv4 socket (NAT64). */
	if (!toasim_v6_on_v4_inet6 || !caller_has_storage(ri)) {
		toasim_count(TOA_STAT_GETNAME_TOA_MISMATCH);
		return 0;
	}
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = c.addr;
	sin6->sin6_port = c.has_port ? c.port : sin->sin_port;
	regs_set_return_value(regs, sizeof(*sin6));
	toasim_count(TOA_STAT_GETNAME_TOA_OK);
	return 0;
}

static int getname6_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct getname_data *d = (struct getname_data *)ri->data;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)d->uaddr;
	struct toasim_addr c;

	if ((long)regs_return_value(regs) < (long)sizeof(*sin6))
		return 0;
	if (!getname_client(d->sock->sk, &c))
		return 0;
	if (c.family == 4) {
		/* A v4 client on a v6 socket reads as ::ffff:a.b.c.d. */
		ipv6_addr_set_v4mapped(c.addr.s6_addr32[0], &sin6->sin6_addr);
	} else {
		sin6->sin6_addr = c.addr;
	}
	sin6->sin6_flowinfo = 0;
	sin6->sin6_scope_id = 0;
	if (c.has_port)
		sin6->sin6_port = c.port;
	toasim_count(TOA_STAT_GETNAME_TOA_OK);
	return 0;
}

static struct kretprobe getname4_probe = {
	.kp.symbol_name = "inet_getname",
	.entry_handler = getname_entry,
	.handler = getname4_ret,
	.data_size = sizeof(struct getname_data),
	.maxactive = 128,
};

static struct kretprobe getname6_probe = {
	.kp.symbol_name = "inet6_getname",
	.entry_handler = getname_entry,
	.handler = getname6_ret,
	.data_size = sizeof(struct getname_data),
	.maxactive = 128,
};

static struct kretprobe *kretprobes[] = {
	&syn_recv4_probe, &syn_recv6_probe, &getname4_probe, &getname6_probe,
};

static struct kprobe *kprobes[] = {
	&conn_request_probe, &destroy_probe, &destruct_probe,
};

int toasim_toa_init(void)
{
	int err;

	syn_flows = toasim_flow_table_create("syn", &toasim_syn_timeout_secs,
					     -1);
	if (!syn_flows)
		return -ENOMEM;
	err = toasim_sock_table_init();
	if (err)
		goto err_flows;
	/* The destroy probe first: no entry may exist without it. */
	err = register_kprobes(kprobes, ARRAY_SIZE(kprobes));
	if (err) {
		pr_err("cannot probe tcp_conn_request/tcp_v4_destroy_sock/__sk_destruct: %d\n",
		       err);
		goto err_sock;
	}
	err = register_kretprobes(kretprobes, ARRAY_SIZE(kretprobes));
	if (err) {
		pr_err("cannot probe syn_recv_sock/getname: %d\n", err);
		goto err_kprobes;
	}
	return 0;

err_kprobes:
	unregister_kprobes(kprobes, ARRAY_SIZE(kprobes));
err_sock:
	toasim_sock_table_exit();
err_flows:
	toasim_flow_table_destroy(syn_flows);
	return err;
}

void toasim_toa_exit(void)
{
	unsigned int i;

	unregister_kretprobes(kretprobes, ARRAY_SIZE(kretprobes));
	/* A missed instance is a TOA or a getpeername() not rewritten. */
	for (i = 0; i < ARRAY_SIZE(kretprobes); i++)
		if (kretprobes[i]->nmissed)
			pr_warn("%s: %d calls missed (maxactive too low)\n",
				kretprobes[i]->kp.symbol_name,
				kretprobes[i]->nmissed);
	unregister_kprobes(kprobes, ARRAY_SIZE(kprobes));
	toasim_sock_table_exit();
	toasim_flow_table_destroy(syn_flows);
}
