// SPDX-License-Identifier: GPL-2.0
/*
 * The module-free TOA/UOA decoder: the same carriers and the same answers
 * as kmod/, from programs attached to the server's cgroup and to the
 * server-side device.
 *
 *  sockops         the SYN (read while the SYN-ACK is written, which works
 *                  under SYN cookies too) and the ACK that completes the
 *                  handshake; the client goes into socket-local storage,
 *                  freed with the socket
 *  getpeername4/6  the client replaces the gateway in the returned address
 *  getsockopt      2049, 4096, 1345 (TCP) and 2048 (UDP, both forms)
 *  tc ingress      UOA: opp's private header is removed so UDP takes the
 *                  datagram, ipo's option is read; flow -> client in an
 *                  LRU map whose entries expire
 *
 * Only UAPI contexts are read, except for the one thing no context holds:
 * the UOA lookup's key, which the application passes in the getsockopt
 * buffer. The kernel does not copy that buffer for a BPF program when its
 * own handler failed (ENOPROTOOPT, as it does for 2048 without a module),
 * so the program reads it from user memory at the address the syscall was
 * given, found in the task's saved registers (CO-RE, kernel BTF).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "decoder.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOL_IP 0
#define SOL_TCP 6
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define SOCK_STREAM 1
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define TC_ACT_OK_ 0
#define TC_ACT_SHOT_ 2
#define EINVAL 22
#define ENOENT 2
#define ENOTCONN 107

#define SO_TTM_PEER 1345
#define SO_UOA 2048
#define SO_TOA_CTL 2049
#define SO_TOA_LOOKUP 4096
#define UOA_NOA_LEN 56
#define UOA_DPVS_LEN 58

#define OPP_PROTOCOL 248
#define OPP_HEADER 4
#define UOA_OPTION 31
#define TFO_MAGIC_0 0xF9
#define TFO_MAGIC_1 0x89

enum { P_NONE, P_FOUND, P_BAD };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct toasim_cfg);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct toasim_lpm4);
	__type(value, __u8);
} trust4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct toasim_lpm6);
	__type(value, __u8);
} trust6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct toasim_client);
} clients SEC(".maps");

/* TOAs seen on SYNs, by 4-tuple, until the handshake completes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct toasim_flow_key);
	__type(value, struct toasim_flow);
} syn_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct toasim_flow_key);
	__type(value, struct toasim_flow);
} uoa_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TOASIM_STAT_NR);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/*
 * Entries user space found expired and deleted ([0] UOA flows, [1] SYN
 * TOAs): written by the loader only, read by `toasim decoder stats`.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} swept SEC(".maps");

/* Byte buffers too large for the 512-byte stack, one per CPU. */
struct scratch {
	__u8 opt[64];		/* TCP or IPv4 option bytes */
	__u8 syn[64];		/* a SYN's TCP header */
	__u8 req[64];		/* a UOA lookup request */
	__u8 pkt[32];		/* opp header and UOA option */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

static __always_inline void stat_inc(__u32 s)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &s);

	if (v)
		*v += 1;
}

static __always_inline struct toasim_cfg *toasim_config(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&cfg, &k);
}

static __always_inline struct scratch *buffers(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&scratch, &k);
}

static __always_inline int trusted4(const struct toasim_cfg *c, __u32 addr)
{
	struct toasim_lpm4 k = { .prefixlen = 32 };

	if (c->trust_any)
		return 1;
	__builtin_memcpy(k.addr, &addr, 4);
	return bpf_map_lookup_elem(&trust4, &k) != NULL;
}

static __always_inline int trusted6(const struct toasim_cfg *c, const __u8 *addr)
{
	struct toasim_lpm6 k = { .prefixlen = 128 };

	if (c->trust_any)
		return 1;
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&trust6, &k) != NULL;
}

static __always_inline int v4_mapped(const __u8 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0 && a[4] == 0 &&
	       a[5] == 0 && a[6] == 0 && a[7] == 0 && a[8] == 0 && a[9] == 0 &&
	       a[10] == 0xff && a[11] == 0xff;
}

/* ---- TCP option bytes -> client (as kmod/toa-parse.c) ------------------ */

/* Byte i of an option area: o points into the scratch map, so masked reads stay in it. */
#define OPT(o, i) ((o)[(i) & 63])

static __always_inline int port_addr_kind(const struct toasim_cfg *c, __u8 kind)
{
	return c->port_addr_kinds[(kind >> 3) & 31] & (1 << (kind & 7));
}

static __always_inline int decode_one(const struct toasim_cfg *c, const __u8 *s, __u32 kind,
				      __u32 at, __u32 dlen, struct toasim_client *out)
{
	__u32 addr_at = 0, port_at = 0;
	int pa, ttm, cdn, family = 0, has_port = 0, k;
	__u16 af;

	kind &= 0xff;
	pa = port_addr_kind(c, kind);
	ttm = c->ttm_kind >= 0 && kind == (__u32)c->ttm_kind;
	cdn = c->cdn_kind >= 0 && kind == (__u32)c->cdn_kind;
	if (!pa && !ttm && !cdn)
		return P_NONE;
	/* Kinds 253/254 are shared experiments: TFO must never read as TOA. */
	if ((kind == 253 || kind == 254) && dlen >= 2 && OPT(s, at) == TFO_MAGIC_0 &&
	    OPT(s, at + 1) == TFO_MAGIC_1)
		return P_NONE;
	/* The layout first, then one copy: fewer paths for the verifier. */
	if (cdn) {
		if (dlen == 5 && OPT(s, at) == 1)
			family = 4;
		else if (dlen == 17 && OPT(s, at) == 2)
			family = 6;
		else if (!pa && !ttm)
			return P_BAD;
		addr_at = at + 1;
	}
	if (!family && ttm && dlen == 20) {
		if (c->ttm_af_network)
			af = (OPT(s, at) << 8) | OPT(s, at + 1);
		else
			af = OPT(s, at) | (OPT(s, at + 1) << 8);
		if (af == AF_INET)
			family = 4;
		else if (af == AF_INET6)
			family = 6;
		else
			return P_BAD;
		has_port = 1;
		port_at = at + 2;
		addr_at = at + 4;
	}
	/* 14: ByteDance's port, addr, pad, vport, vaddr; the VIP is not needed */
	if (!family && pa) {
		if (dlen == 6 || dlen == 14)
			family = 4;
		else if (dlen == 18)
			family = 6;
		has_port = 1;
		port_at = at;
		addr_at = at + 2;
	}
	if (!family)
		return P_BAD;
	__builtin_memset(out, 0, sizeof(*out));
	out->family = family;
#pragma unroll
	for (k = 0; k < 16; k++)
		out->addr[k] = OPT(s, addr_at + k);
	if (family == 4)
		__builtin_memset(out->addr + 4, 0, 12);
	if (has_port) {
		out->has_port = 1;
		((__u8 *)&out->port)[0] = OPT(s, port_at);
		((__u8 *)&out->port)[1] = OPT(s, port_at + 1);
	}
	return P_FOUND;
}

struct walk {
	const struct toasim_cfg *c;
	const __u8 *s;
	struct toasim_client *out;
	__u32 len;
	__u32 i;
	int found;
	int bad;
	int done;
};

/*
 * One option per call (bpf_loop), with the guards of the kernel's
 * tcp_parse_options(): a broken list, or two TOAs, refuses the packet.
 */
static long walk_one(__u64 n, void *arg)
{
	struct walk *w = arg;
	struct toasim_client tmp;
	__u32 i = w->i, len = w->len, olen;
	__u8 kind;
	int r;

	if (i >= len || i >= 40)
		return 1;
	kind = OPT(w->s, i);
	if (kind == 0)
		return 1;
	if (kind == 1) {
		w->i = i + 1;
		return 0;
	}
	if (len - i < 2) {
		w->bad = 1;
		w->done = 1;
		return 1;
	}
	olen = OPT(w->s, i + 1);
	if (olen < 2 || olen > len - i) {
		w->bad = 1;
		w->done = 1;
		return 1;
	}
	r = decode_one(w->c, w->s, kind, i + 2, olen - 2, &tmp);
	if (r == P_FOUND) {
		if (w->found) {
			w->bad = 1;
			w->found = 0;
			w->done = 1;
			return 1;
		}
		w->found = 1;
		*w->out = tmp;
	} else if (r == P_BAD) {
		w->bad = 1;
	}
	w->i = i + olen;
	return 0;
}

static __always_inline int parse_options(const struct toasim_cfg *c, const __u8 *s,
					 __u32 len, struct toasim_client *out)
{
	struct walk w = { .c = c, .s = s, .out = out, .len = len };

	bpf_loop(40, walk_one, &w, 0);
	if (w.found)
		return P_FOUND;
	return w.bad ? P_BAD : P_NONE;
}

/* ---- sockops ------------------------------------------------------------ */

/* The socket's 4-tuple as a flow key (gateway -> server), v4-mapped as v4. */
static __always_inline void sock_key(struct bpf_sock_ops *skops, struct toasim_flow_key *k)
{
	__u32 w[4];

	__builtin_memset(k, 0, sizeof(*k));
	k->sport = (__be16)(skops->remote_port >> 16);
	k->dport = bpf_htons((__u16)skops->local_port);
	if (skops->family == AF_INET) {
		k->family = 4;
		w[0] = skops->remote_ip4;
		w[1] = skops->local_ip4;
		__builtin_memcpy(k->saddr, &w[0], 4);
		__builtin_memcpy(k->daddr, &w[1], 4);
		return;
	}
	k->family = 6;
	/* Context fields are read one by one: the verifier takes no pointer to them. */
	w[0] = skops->remote_ip6[0];
	w[1] = skops->remote_ip6[1];
	w[2] = skops->remote_ip6[2];
	w[3] = skops->remote_ip6[3];
	__builtin_memcpy(k->saddr, w, 16);
	w[0] = skops->local_ip6[0];
	w[1] = skops->local_ip6[1];
	w[2] = skops->local_ip6[2];
	w[3] = skops->local_ip6[3];
	__builtin_memcpy(k->daddr, w, 16);
	if (v4_mapped(k->saddr) && v4_mapped(k->daddr)) {
		k->family = 4;
		__builtin_memcpy(k->saddr, k->saddr + 12, 4);
		__builtin_memcpy(k->daddr, k->daddr + 12, 4);
		__builtin_memset(k->saddr + 4, 0, 12);
		__builtin_memset(k->daddr + 4, 0, 12);
	}
}

static __always_inline int key_trusted(const struct toasim_cfg *c, const struct toasim_flow_key *k)
{
	__u32 a;

	if (k->family == 4) {
		__builtin_memcpy(&a, k->saddr, 4);
		return trusted4(c, a);
	}
	return trusted6(c, k->saddr);
}

/* The length of the TCP options of the header at s->syn (len bytes). */
static __always_inline __u32 syn_options(struct scratch *s, int len)
{
	__u32 hl;

	if (len < 20)
		return 0;
	hl = (s->syn[12] >> 4) * 4;
	if (hl < 20 || hl > (__u32)len)
		return 0;
	return hl - 20;
}

/* The SYN, read while its SYN-ACK is being written (SYN cookies too). */
static __always_inline void on_synack(struct bpf_sock_ops *skops, const struct toasim_cfg *c,
				      struct scratch *s)
{
	struct toasim_flow_key k;
	struct toasim_flow f = {};
	__u32 olen;
	int n;

	n = bpf_getsockopt(skops, SOL_TCP, TCP_BPF_SYN, s->syn, 60);
	if (n <= 0)
		return;
	olen = syn_options(s, n);
	switch (parse_options(c, s->syn + 20, olen, &f.client)) {
	case P_NONE:
		return;
	case P_BAD:
		stat_inc(TOA_MALFORMED);
		return;
	}
	sock_key(skops, &k);
	if (!key_trusted(c, &k)) {
		stat_inc(TOA_UNTRUSTED);
		return;
	}
	f.expires_ns = bpf_ktime_get_ns() + (__u64)c->syn_timeout_s * 1000000000ULL;
	if (bpf_map_update_elem(&syn_flows, &k, &f, BPF_ANY) == 0)
		stat_inc(TOA_SYN_SAVED);
}

static __always_inline void on_established(struct bpf_sock_ops *skops,
					   const struct toasim_cfg *c, struct scratch *s)
{
	void *data = (void *)(long)skops->skb_data;
	void *end = (void *)(long)skops->skb_data_end;
	struct toasim_client client = {};
	struct toasim_client *stored;
	struct toasim_flow_key k;
	struct toasim_flow *syn;
	__u32 hl, olen = 0, k2;
	struct bpf_sock *sk;
	int r, trusted;

	bpf_sock_ops_cb_flags_set(skops, 0);
	sock_key(skops, &k);
	trusted = key_trusted(c, &k);
	if (data + 20 <= end) {
		hl = (((__u8 *)data)[12] >> 4) * 4;
		if (hl >= 20)
			olen = hl - 20;
	}
	if (olen > 40)
		olen = 40;
	for (k2 = 0; k2 < 40; k2++) {
		__u8 *p = data + 20 + k2;

		if (k2 >= olen || (void *)(p + 1) > end)
			break;
		s->opt[k2] = *p;
	}
	if (k2 < olen)
		r = P_BAD;
	else
		r = parse_options(c, s->opt, olen, &client);
	/* The SYN's entry is used up either way: it must not outlive this. */
	syn = bpf_map_lookup_elem(&syn_flows, &k);
	if (syn) {
		if (r == P_NONE && syn->expires_ns > bpf_ktime_get_ns()) {
			client = syn->client;
			r = P_FOUND;
			trusted = 1;	/* checked when it was saved */
		}
		bpf_map_delete_elem(&syn_flows, &k);
	}
	if (r == P_FOUND && !trusted) {
		stat_inc(TOA_UNTRUSTED);
		r = P_NONE;
	} else if (r == P_BAD) {
		stat_inc(TOA_MALFORMED);
	}
	sk = skops->sk;
	if (r != P_FOUND || !sk) {
		stat_inc(TOA_SYN_RECV_SOCK_NO_TOA);
		return;
	}
	stored = bpf_sk_storage_get(&clients, sk, &client, BPF_SK_STORAGE_GET_F_CREATE);
	if (!stored) {
		stat_inc(TOA_SYN_RECV_SOCK_NO_TOA);
		return;
	}
	*stored = client;
	stat_inc(TOA_SYN_RECV_SOCK_TOA);
	stat_inc(TOA_SOCK_ALLOC);
	if (client.family == 6)
		stat_inc(TOA_IP6_ALLOC);
	/* To count the storage's end with the socket's. */
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct toasim_client *stored;
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return;
	stored = bpf_sk_storage_get(&clients, sk, 0, 0);
	if (!stored)
		return;
	stat_inc(TOA_SOCK_FREE);
	if (stored->family == 6)
		stat_inc(TOA_IP6_FREE);
	bpf_sk_storage_delete(&clients, sk);
}

SEC("sockops")
int toasim_sockops(struct bpf_sock_ops *skops)
{
	struct toasim_cfg *c = toasim_config();
	struct scratch *s = buffers();

	if (!c || !s)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		/* Makes the kernel call back while it writes each SYN-ACK. */
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		if (skops->skb_tcp_flags & 0x02)	/* the SYN-ACK */
			on_synack(skops, c, s);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops, c, s);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

/* ---- getpeername -------------------------------------------------------- */

static __always_inline struct toasim_client *peer_client(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct toasim_client *c;

	if (!sk)
		return NULL;
	if (sk->protocol != IPPROTO_TCP_) {
		stat_inc(TOA_GETNAME_BYPASS);
		return NULL;
	}
	c = bpf_sk_storage_get(&clients, sk, 0, 0);
	if (!c)
		stat_inc(TOA_GETNAME_EMPTY);
	return c;
}

SEC("cgroup/getpeername4")
int toasim_getpeername4(struct bpf_sock_addr *ctx)
{
	struct toasim_client *c = peer_client(ctx);
	__u32 a;

	if (!c)
		return 1;
	/* An IPv6 client cannot be shown on an IPv4 socket: read 4096. */
	if (c->family != 4) {
		stat_inc(TOA_GETNAME_MISMATCH);
		return 1;
	}
	__builtin_memcpy(&a, c->addr, 4);
	ctx->user_ip4 = a;
	if (c->has_port)
		ctx->user_port = c->port;
	stat_inc(TOA_GETNAME_OK);
	return 1;
}

SEC("cgroup/getpeername6")
int toasim_getpeername6(struct bpf_sock_addr *ctx)
{
	struct toasim_client *c = peer_client(ctx);
	__u32 w[4];

	if (!c)
		return 1;
	if (c->family == 4) {
		/* A v4 client on a v6 socket reads as ::ffff:a.b.c.d. */
		w[0] = 0;
		w[1] = 0;
		w[2] = bpf_htonl(0xffff);
		__builtin_memcpy(&w[3], c->addr, 4);
	} else {
		__builtin_memcpy(w, c->addr, 16);
	}
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
	if (c->has_port)
		ctx->user_port = c->port;
	stat_inc(TOA_GETNAME_OK);
	return 1;
}

/* ---- getsockopt --------------------------------------------------------- */

static __always_inline int refuse(int err)
{
	bpf_set_retval(-err);
	return 1;
}

static __always_inline int connected(const struct bpf_sock *sk)
{
	__u32 st = sk->state;

	return st == BPF_TCP_ESTABLISHED || st == BPF_TCP_CLOSE_WAIT ||
	       st == BPF_TCP_FIN_WAIT1 || st == BPF_TCP_FIN_WAIT2 || st == BPF_TCP_CLOSING ||
	       st == BPF_TCP_LAST_ACK || st == BPF_TCP_SYN_RECV;
}

static __always_inline __u16 af_of(const struct toasim_client *c)
{
	return c->family == 4 ? AF_INET : AF_INET6;
}

/* The socket's own peer (the gateway), IPv4-mapped ones as IPv4. */
static __always_inline void own_peer(struct bpf_sock *sk, struct toasim_client *c)
{
	__u32 a[4];

	__builtin_memset(c, 0, sizeof(*c));
	c->has_port = 1;
	c->port = (__be16)sk->dst_port;
	a[0] = sk->dst_ip6[0];
	a[1] = sk->dst_ip6[1];
	a[2] = sk->dst_ip6[2];
	a[3] = sk->dst_ip6[3];
	if (sk->family == AF_INET6 && !(a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff))) {
		c->family = 6;
		__builtin_memcpy(c->addr, a, 16);
		return;
	}
	c->family = 4;
	a[0] = sk->dst_ip4;
	__builtin_memcpy(c->addr, a, 4);
}

static __always_inline int tcp_getsockopt(struct bpf_sockopt *ctx, int optname)
{
	__u8 *v = ctx->optval, *end = ctx->optval_end;
	struct bpf_sock *sk = ctx->sk;
	struct toasim_client c, *got;
	int k;

	if (!sk || sk->protocol != IPPROTO_TCP_ || sk->type != SOCK_STREAM)
		return refuse(EINVAL);
	if (ctx->optlen < 20 || v + 20 > end)
		return refuse(EINVAL);
	if (!connected(sk))
		return refuse(ENOTCONN);
	got = bpf_sk_storage_get(&clients, sk, 0, 0);
	if (got)
		c = *got;
	else
		own_peer(sk, &c);
	if (!got && optname != SO_TOA_CTL)
		return refuse(EINVAL);
	if (optname == SO_TOA_LOOKUP && (sk->family != AF_INET || c.family != 6))
		return refuse(EINVAL);
	if (!c.has_port) {
		/* aliyun-cdn carries no port: the socket's own is kept. */
		c.port = (__be16)sk->dst_port;
	}
#pragma unroll
	for (k = 0; k < 20; k++)
		v[k] = 0;
	if (optname == SO_TOA_CTL) {
		/* union {be32 ip; be32 ip6[4]} addr; be16 port; u8 family; u8 toa_set */
		__builtin_memcpy(v, c.addr, 16);
		if (c.family == 4)
			__builtin_memset(v + 4, 0, 12);
		__builtin_memcpy(v + 16, &c.port, 2);
		v[18] = af_of(&c);
		v[19] = got ? 1 : 0;
	} else if (optname == SO_TOA_LOOKUP) {
		/* struct in6_addr saddr; be16 port; u16 pad */
		__builtin_memcpy(v, c.addr, 16);
		__builtin_memcpy(v + 16, &c.port, 2);
	} else {
		/* u16 af (host order); be16 port; addr */
		__u16 af = af_of(&c);

		__builtin_memcpy(v, &af, 2);
		__builtin_memcpy(v + 2, &c.port, 2);
		__builtin_memcpy(v + 4, c.addr, 16);
		if (c.family == 4)
			__builtin_memset(v + 8, 0, 12);
	}
	ctx->optlen = 20;
	ctx->retval = 0;
	return 1;
}

/* A lookup's addresses as a flow key; IPv4-mapped pairs become IPv4. */
static __always_inline int uoa_key(__u32 af, const __u8 *req, __u32 sa, __u32 da, __u32 sp,
				   __u32 dp, struct toasim_flow_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->sport = req[sp & 63] | (req[(sp + 1) & 63] << 8);
	k->dport = req[dp & 63] | (req[(dp + 1) & 63] << 8);
	if (af == AF_INET) {
		k->family = 4;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			k->saddr[i] = req[(sa + i) & 63];
			k->daddr[i] = req[(da + i) & 63];
		}
		return 0;
	}
	if (af != AF_INET6)
		return -1;
	k->family = 6;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		k->saddr[i] = req[(sa + i) & 63];
		k->daddr[i] = req[(da + i) & 63];
	}
	if (v4_mapped(k->saddr) && v4_mapped(k->daddr)) {
		k->family = 4;
		__builtin_memcpy(k->saddr, k->saddr + 12, 4);
		__builtin_memcpy(k->daddr, k->daddr + 12, 4);
		__builtin_memset(k->saddr + 4, 0, 12);
		__builtin_memset(k->daddr + 4, 0, 12);
	}
	return 0;
}

/* The request the application put in its getsockopt buffer (see the top). */
static __always_inline int read_request(int want_level, int want_optname, struct scratch *s,
					__u32 len)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
	unsigned long level, optname, optval;

	if (!regs)
		return -1;
	level = PT_REGS_PARM2_CORE_SYSCALL(regs);
	optname = PT_REGS_PARM3_CORE_SYSCALL(regs);
	optval = PT_REGS_PARM4_CORE_SYSCALL(regs);
	/* Not the getsockopt(2) of this call (io_uring, a 32-bit process). */
	if ((int)level != want_level || (int)optname != want_optname)
		return -1;
	if (len == UOA_NOA_LEN)
		return bpf_probe_read_user(s->req, UOA_NOA_LEN, (void *)optval);
	return bpf_probe_read_user(s->req, UOA_DPVS_LEN, (void *)optval);
}

static __always_inline int uoa_getsockopt(struct bpf_sockopt *ctx)
{
	__u8 *v = ctx->optval, *end = ctx->optval_end;
	struct bpf_sock *sk = ctx->sk;
	struct scratch *s = buffers();
	struct toasim_flow_key k;
	struct toasim_flow *f;
	__u32 len = ctx->optlen, af;
	int k2, noa;

	if (!s || !sk || sk->protocol != IPPROTO_UDP_ ||
	    (len != UOA_NOA_LEN && len != UOA_DPVS_LEN)) {
		stat_inc(UOA_INVALID);
		return refuse(EINVAL);
	}
	noa = len == UOA_NOA_LEN;
	if (v + UOA_DPVS_LEN > end && !(noa && v + UOA_NOA_LEN <= end)) {
		stat_inc(UOA_INVALID);
		return refuse(EINVAL);
	}
	if (read_request(SOL_IP, SO_UOA, s, len) < 0) {
		stat_inc(UOA_INVALID);
		return refuse(EINVAL);
	}
	/* noa: saddr(16) daddr(16) sport dport u8 af; dpvs: u16 af saddr daddr sport dport */
	af = noa ? s->req[36] : (s->req[0] | (s->req[1] << 8));
	if (uoa_key(af, s->req, noa ? 0 : 2, noa ? 16 : 18, noa ? 32 : 34, noa ? 34 : 36, &k)) {
		stat_inc(UOA_INVALID);
		return refuse(EINVAL);
	}
	f = bpf_map_lookup_elem(&uoa_flows, &k);
	if (f && f->expires_ns <= bpf_ktime_get_ns()) {
		bpf_map_delete_elem(&uoa_flows, &k);
		stat_inc(UOA_EXPIRED);
		f = NULL;
	}
	if (!f) {
		stat_inc(UOA_MISS);
		return refuse(ENOENT);
	}
	if (noa) {
		/* out: real_saddr(16) be16 real_sport u8 real_af, at 37 */
		/* addr is zero past an IPv4 address */
#pragma unroll
		for (k2 = 0; k2 < 16; k2++)
			s->req[37 + k2] = f->client.addr[k2];
		__builtin_memcpy(&s->req[53], &f->client.port, 2);
		s->req[55] = af_of(&f->client);
		if (v + UOA_NOA_LEN > end)
			return refuse(EINVAL);
#pragma unroll
		for (k2 = 0; k2 < UOA_NOA_LEN; k2++)
			v[k2] = s->req[k2];
	} else {
		/* out: u16 real_af (host), real_saddr(16), be16 real_sport, at 38 */
		__u16 raf = af_of(&f->client);

		__builtin_memcpy(&s->req[38], &raf, 2);
#pragma unroll
		for (k2 = 0; k2 < 16; k2++)
			s->req[40 + k2] = f->client.addr[k2];
		__builtin_memcpy(&s->req[56], &f->client.port, 2);
		if (v + UOA_DPVS_LEN > end)
			return refuse(EINVAL);
#pragma unroll
		for (k2 = 0; k2 < UOA_DPVS_LEN; k2++)
			v[k2] = s->req[k2];
	}
	ctx->optlen = len;
	ctx->retval = 0;
	stat_inc(UOA_SUCCESS);
	return 1;
}

SEC("cgroup/getsockopt")
int toasim_getsockopt(struct bpf_sockopt *ctx)
{
	int level = ctx->level, optname = ctx->optname;

	if (level != SOL_IP)
		return 1;
	switch (optname) {
	case SO_TOA_CTL:
	case SO_TOA_LOOKUP:
	case SO_TTM_PEER:
		return tcp_getsockopt(ctx, optname);
	case SO_UOA:
		return uoa_getsockopt(ctx);
	}
	return 1;
}

/* ---- tc ingress: UOA ---------------------------------------------------- */

static __always_inline void save_flow(const struct toasim_cfg *c, __u8 family, const void *saddr,
				      const void *daddr, __be16 sport, __be16 dport,
				      const struct toasim_client *client)
{
	struct toasim_flow_key k = {};
	struct toasim_flow f = {};

	k.family = family;
	__builtin_memcpy(k.saddr, saddr, family == 4 ? 4 : 16);
	__builtin_memcpy(k.daddr, daddr, family == 4 ? 4 : 16);
	k.sport = sport;
	k.dport = dport;
	f.client = *client;
	f.expires_ns = bpf_ktime_get_ns() + (__u64)c->uoa_timeout_s * 1000000000ULL;
	stat_inc(UOA_GOT);
	if (bpf_map_update_elem(&uoa_flows, &k, &f, BPF_ANY) == 0)
		stat_inc(UOA_SAVED);
}

/* The UOA option at s->pkt[at..], len bytes available: the client, or -1. */
static __always_inline int uoa_option(const __u8 *p, __u32 len, struct toasim_client *out)
{
	int k;

	__builtin_memset(out, 0, sizeof(*out));
	if (len < 2 || p[0] != UOA_OPTION || p[1] > len)
		return -1;
	out->has_port = 1;
	out->port = p[2] | (p[3] << 8);
	if (p[1] == 8) {
		out->family = 4;
#pragma unroll
		for (k = 0; k < 4; k++)
			out->addr[k] = p[4 + k];
		return 0;
	}
	if (p[1] == 20 && len >= 20) {
		out->family = 6;
#pragma unroll
		for (k = 0; k < 16; k++)
			out->addr[k] = p[4 + k];
		return 0;
	}
	return -1;
}

/*
 * opp: IP protocol 248, {version<<4, 17, be16 length}, the option, then
 * UDP. Checked as kmod/uoa.c checks it; returns the private length, or 0.
 */
static __always_inline __u32 opp_length(struct __sk_buff *skb, __u32 off, __u32 ip_end,
					struct scratch *s, struct toasim_client *client)
{
	__u32 len, version;

	if (bpf_skb_load_bytes(skb, off, s->pkt, OPP_HEADER + 2))
		return 0;
	version = s->pkt[0] >> 4;
	len = (s->pkt[2] << 8) | s->pkt[3];
	if ((version != 1 && version != 2) || s->pkt[1] != IPPROTO_UDP_)
		return 0;
	if (len != OPP_HEADER + (version == 1 ? 8 : 20))
		return 0;
	if (off + len + 8 > ip_end)
		return 0;
	if (version == 1) {
		if (bpf_skb_load_bytes(skb, off, s->pkt, OPP_HEADER + 8))
			return 0;
	} else if (bpf_skb_load_bytes(skb, off, s->pkt, OPP_HEADER + 20)) {
		return 0;
	}
	if (uoa_option(s->pkt + OPP_HEADER, len - OPP_HEADER, client) ||
	    s->pkt[OPP_HEADER + 1] != len - OPP_HEADER || client->family != (version == 1 ? 4 : 6))
		return 0;
	return len;
}

static __always_inline int opp4(struct __sk_buff *skb, const struct toasim_cfg *c,
				struct scratch *s, struct iphdr *iph, __u32 l3)
{
	__u32 ip_len = bpf_ntohs(iph->tot_len), len;
	struct toasim_client client;
	__be16 ports[2];
	__u16 old, new;
	int trusted = trusted4(c, iph->saddr);

	len = opp_length(skb, l3 + 20, l3 + ip_len, s, &client);
	if (!len) {
		stat_inc(UOA_INVALID);
		return trusted ? TC_ACT_SHOT_ : TC_ACT_OK_;
	}
	if (!trusted) {
		stat_inc(UOA_UNTRUSTED);
		return TC_ACT_OK_;
	}
	if (bpf_skb_load_bytes(skb, l3 + 20 + len, ports, 4))
		return TC_ACT_OK_;
	if (bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_NET, 0))
		return TC_ACT_SHOT_;
	/* protocol (with ttl, one 16-bit word) and total length */
	old = bpf_htons((iph->ttl << 8) | OPP_PROTOCOL);
	new = bpf_htons((iph->ttl << 8) | IPPROTO_UDP_);
	bpf_l3_csum_replace(skb, l3 + 10, old, new, 2);
	bpf_skb_store_bytes(skb, l3 + 8, &new, 2, 0);
	old = iph->tot_len;
	new = bpf_htons(ip_len - len);
	bpf_l3_csum_replace(skb, l3 + 10, old, new, 2);
	bpf_skb_store_bytes(skb, l3 + 2, &new, 2, 0);
	save_flow(c, 4, &iph->saddr, &iph->daddr, ports[0], ports[1], &client);
	return TC_ACT_OK_;
}

struct ipo_walk {
	const __u8 *o;
	__u32 n;
	__u32 i;
	int found;
	int bad;
};

/* One IPv4 option per call (bpf_loop), as ip_options_compile() walks them. */
static long ipo_one(__u64 step, void *arg)
{
	struct ipo_walk *w = arg;
	__u32 i = w->i, n = w->n, olen;
	__u8 kind;

	if (i >= n || i >= 40)
		return 1;
	kind = OPT(w->o, i);
	if (kind == 0)
		return 1;
	if (kind == 1) {
		w->i = i + 1;
		return 0;
	}
	olen = OPT(w->o, i + 1);
	if (n - i < 2 || olen < 2 || olen > n - i) {
		w->bad = 1;
		return 1;
	}
	if (kind == UOA_OPTION) {
		w->found = 1;
		return 1;
	}
	w->i = i + olen;
	return 0;
}

/* IPv4 UDP with options: the UOA option, if any (read, not removed). */
static __always_inline int ipo(struct __sk_buff *skb, const struct toasim_cfg *c,
			       struct scratch *s, struct iphdr *iph, __u32 l3)
{
	__u32 ihl = iph->ihl * 4, n = ihl - 20, ip_len = bpf_ntohs(iph->tot_len);
	struct ipo_walk w = { .o = s->opt };
	int trusted = trusted4(c, iph->saddr), k;
	struct toasim_client client;
	__be16 udp[4];

	/* Word by word: a load of constant size is one the verifier can check. */
	if (n < 4 || n > 40)
		return TC_ACT_OK_;
	for (k = 0; k < 10; k++) {
		if ((__u32)k * 4 >= n)
			break;
		if (bpf_skb_load_bytes(skb, l3 + 20 + k * 4, &s->opt[(k * 4) & 63], 4))
			return TC_ACT_OK_;
	}
	w.n = n;
	bpf_loop(40, ipo_one, &w, 0);
	if (w.bad)
		goto invalid;
	if (!w.found) {
		if (trusted)
			stat_inc(UOA_NONE);
		return TC_ACT_OK_;
	}
	/* The option into s->pkt for uoa_option(); bytes past n are not read. */
#pragma unroll
	for (k = 0; k < 20; k++)
		s->pkt[k] = OPT(s->opt, w.i + k);
	if (uoa_option(s->pkt, n - w.i < 20 ? n - w.i : 20, &client))
		goto invalid;
	if (!trusted) {
		stat_inc(UOA_UNTRUSTED);
		return TC_ACT_OK_;
	}
	if (ihl + 8 > ip_len || bpf_skb_load_bytes(skb, l3 + ihl, udp, 8))
		goto invalid;
	save_flow(c, 4, &iph->saddr, &iph->daddr, udp[0], udp[1], &client);
	if (bpf_ntohs(udp[2]) == 8)
		return TC_ACT_SHOT_;	/* the gateway's probe: nobody asked for it */
	return TC_ACT_OK_;
invalid:
	stat_inc(UOA_INVALID);
	return TC_ACT_OK_;
}

static __always_inline int opp6(struct __sk_buff *skb, const struct toasim_cfg *c,
				struct scratch *s, struct ipv6hdr *ip6, __u32 l3)
{
	__u32 ip_len = 40 + bpf_ntohs(ip6->payload_len), len;
	struct toasim_client client;
	__be16 ports[2];
	__u8 udp = IPPROTO_UDP_;
	__be16 plen;
	int trusted = trusted6(c, (const __u8 *)&ip6->saddr);

	len = opp_length(skb, l3 + 40, l3 + ip_len, s, &client);
	if (!len) {
		stat_inc(UOA_INVALID);
		return trusted ? TC_ACT_SHOT_ : TC_ACT_OK_;
	}
	if (!trusted) {
		stat_inc(UOA_UNTRUSTED);
		return TC_ACT_OK_;
	}
	if (bpf_skb_load_bytes(skb, l3 + 40 + len, ports, 4))
		return TC_ACT_OK_;
	if (bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_NET, 0))
		return TC_ACT_SHOT_;
	bpf_skb_store_bytes(skb, l3 + 6, &udp, 1, 0);
	plen = bpf_htons(ip_len - len - 40);
	bpf_skb_store_bytes(skb, l3 + 4, &plen, 2, 0);
	save_flow(c, 6, &ip6->saddr, &ip6->daddr, ports[0], ports[1], &client);
	return TC_ACT_OK_;
}

SEC("tc")
int toasim_ingress(struct __sk_buff *skb)
{
	struct toasim_cfg *c = toasim_config();
	struct scratch *s = buffers();
	struct iphdr iph;
	struct ipv6hdr ip6;
	__u32 l3;

	if (!c || !s)
		return TC_ACT_OK_;
	l3 = c->l3_offset & 0xff;
	if (skb->protocol == bpf_htons(ETH_P_IP_)) {
		if (bpf_skb_load_bytes(skb, l3, &iph, sizeof(iph)))
			return TC_ACT_OK_;
		if (iph.version != 4 || (iph.frag_off & bpf_htons(0x3fff)) ||
		    bpf_ntohs(iph.tot_len) > skb->len - l3)
			return TC_ACT_OK_;
		if (iph.protocol == OPP_PROTOCOL && iph.ihl == 5)
			return opp4(skb, c, s, &iph, l3);
		if (iph.protocol == IPPROTO_UDP_ && iph.ihl > 5)
			return ipo(skb, c, s, &iph, l3);
		return TC_ACT_OK_;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6_)) {
		if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)))
			return TC_ACT_OK_;
		if (ip6.nexthdr == OPP_PROTOCOL && 40 + bpf_ntohs(ip6.payload_len) <= skb->len - l3)
			return opp6(skb, c, s, &ip6, l3);
	}
	return TC_ACT_OK_;
}
