/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal declarations shared by the toasim module's files. The module
 * decodes the client address that a FULLNAT gateway puts in TCP options
 * (TOA) and next to UDP datagrams (UOA), and answers getpeername() and the
 * getsockopt() ABIs of the uapi header with it.
 */
#ifndef _TOASIM_H
#define _TOASIM_H

#include <linux/types.h>
#include <linux/in6.h>
#include <linux/list.h>
#include <linux/rcupdate.h>
#include <linux/percpu.h>

struct net;
struct sock;

/* A client address as a carrier gave it. family is 4 or 6 (not AF_*). */
struct toasim_addr {
	u8 family;
	bool has_port;		/* aliyun-cdn's layout carries no port */
	__be16 port;
	struct in6_addr addr;	/* IPv4 in s6_addr32[0] */
};

/* --- params.c: module parameters, checked once at load --- */
struct toasim_kinds {
	DECLARE_BITMAP(port_addr, 256);	/* kinds for the port+address layouts */
	int ttm_kind;			/* -1: off */
	bool ttm_af_network_order;
	int cdn_kind;			/* -1: off */
};

extern struct toasim_kinds toasim_kinds;
extern bool toasim_v6_on_v4_inet6;
extern unsigned int toasim_uoa_timeout_secs;
extern unsigned int toasim_syn_timeout_secs;
extern unsigned int toasim_max_flows;
int toasim_params_init(void);

/* --- trust.c: the gateway source ranges a carrier is accepted from --- */
int toasim_trust_parse(const char *spec);
bool toasim_trusted4(__be32 saddr);
bool toasim_trusted6(const struct in6_addr *saddr);

/* --- toa-parse.c: TCP option bytes -> client address (no kernel state) --- */
enum toasim_parse_result {
	TOASIM_PARSE_NONE,
	TOASIM_PARSE_FOUND,
	TOASIM_PARSE_MALFORMED,
};

enum toasim_parse_result toasim_parse_tcp_options(const u8 *opt,
						  unsigned int len,
						  const struct toasim_kinds *k,
						  struct toasim_addr *out);
enum toasim_parse_result toasim_parse_uoa_option(const u8 *opt,
						 unsigned int len,
						 struct toasim_addr *out);

/* --- stats.c: per-CPU counters and their /proc/net files --- */
enum toasim_stat {
	/* /proc/net/toa_stats, in this order */
	TOA_STAT_SYN_RECV_SOCK_TOA,
	TOA_STAT_SYN_RECV_SOCK_NO_TOA,
	TOA_STAT_GETNAME_TOA_OK,
	TOA_STAT_GETNAME_TOA_MISMATCH,
	TOA_STAT_GETNAME_TOA_BYPASS,
	TOA_STAT_GETNAME_TOA_EMPTY,
	TOA_STAT_IP6_ADDRESS_ALLOC,
	TOA_STAT_IP6_ADDRESS_FREE,
	TOA_STAT_MALFORMED,
	TOA_STAT_UNTRUSTED,
	TOA_STAT_SYN_SAVED,
	TOA_STAT_NR,
	/* /proc/net/uoa_stats, in this order */
	UOA_STAT_SUCCESS = TOA_STAT_NR,
	UOA_STAT_MISS,
	UOA_STAT_INVALID,
	UOA_STAT_GOT,
	UOA_STAT_NONE,
	UOA_STAT_SAVED,
	UOA_STAT_UNTRUSTED,
	UOA_STAT_EXPIRED,
	TOASIM_STAT_NR,
};

struct toasim_stats {
	u64 v[TOASIM_STAT_NR];
};

DECLARE_PER_CPU(struct toasim_stats, toasim_stats);

static inline void toasim_count(enum toasim_stat s)
{
	this_cpu_inc(toasim_stats.v[s]);
}

int toasim_proc_init(struct net *net);
void toasim_proc_exit(struct net *net);

/* --- flow-table.c: 4-tuple -> client, with expiry (UOA, SYN-carried TOA) --- */
struct toasim_flow_key {
	struct in6_addr saddr;	/* IPv4 in s6_addr32[0] */
	struct in6_addr daddr;
	__be16 sport;
	__be16 dport;
	u8 family;
	u8 pad[3];
};

struct toasim_flow_table;

struct toasim_flow_table *toasim_flow_table_create(const char *name,
						   unsigned int *timeout_secs,
						   int expired_stat);
void toasim_flow_table_destroy(struct toasim_flow_table *t);
int toasim_flow_put(struct toasim_flow_table *t,
		    const struct toasim_flow_key *key,
		    const struct toasim_addr *client);
bool toasim_flow_get(struct toasim_flow_table *t,
		     const struct toasim_flow_key *key,
		     struct toasim_addr *client, bool remove);
unsigned int toasim_flow_count(struct toasim_flow_table *t);

/* --- sock-table.c: TCP socket -> client, for the socket's lifetime --- */
int toasim_sock_table_init(void);
void toasim_sock_table_exit(void);
int toasim_sock_put(const struct sock *sk, const struct toasim_addr *client);
bool toasim_sock_get(const struct sock *sk, struct toasim_addr *client);
bool toasim_sock_known(const struct sock *sk);
void toasim_sock_forget(const struct sock *sk);
unsigned int toasim_sock_count(void);

/* --- toa.c: the TCP probes --- */
int toasim_toa_init(void);
unsigned int toasim_syn_pending(void);
void toasim_toa_exit(void);

/* --- uoa.c: the UDP netfilter hooks and flow map --- */
extern struct toasim_flow_table *toasim_uoa_flows;
int toasim_uoa_init(void);
void toasim_uoa_exit(void);
int toasim_uoa_net_init(struct net *net);
void toasim_uoa_net_exit(struct net *net);

/* --- sockopt.c: the getsockopt ABIs --- */
int toasim_sockopt_init(void);
void toasim_sockopt_exit(void);

#endif /* _TOASIM_H */
