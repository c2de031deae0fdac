/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the eBPF decoder and its loader share: the layouts of its maps and
 * the order of its counters. src/decoder/maps.ts mirrors this file;
 * test/unit/decoder-maps.test.ts keeps the two equal.
 */
#ifndef TOASIM_DECODER_H
#define TOASIM_DECODER_H

/* Counters, in the order of the kernel module's /proc/net rows. */
enum toasim_stat {
	TOA_SYN_RECV_SOCK_TOA,
	TOA_SYN_RECV_SOCK_NO_TOA,
	TOA_GETNAME_OK,
	TOA_GETNAME_MISMATCH,
	TOA_GETNAME_BYPASS,
	TOA_GETNAME_EMPTY,
	TOA_IP6_ALLOC,
	TOA_IP6_FREE,
	TOA_MALFORMED,
	TOA_UNTRUSTED,
	TOA_SYN_SAVED,
	TOA_SOCK_ALLOC,
	TOA_SOCK_FREE,
	UOA_SUCCESS,
	UOA_MISS,
	UOA_INVALID,
	UOA_GOT,
	UOA_NONE,
	UOA_SAVED,
	UOA_UNTRUSTED,
	UOA_EXPIRED,
	TOASIM_STAT_NR,
};

/* Settings, written by the loader before the programs are attached. */
struct toasim_cfg {
	__u8 port_addr_kinds[32];	/* bitmap: kinds of the port+address layouts */
	__s16 ttm_kind;			/* -1: off */
	__s16 cdn_kind;			/* -1: off */
	__u8 ttm_af_network;		/* ttm af in network order */
	__u8 trust_any;
	__u16 l3_offset;		/* where tc finds the IP header: 0 (TUN), 14 (Ethernet) */
	__u32 uoa_timeout_s;
	__u32 syn_timeout_s;
};

/* A client as a carrier named it; family 4 or 6, IPv4 in addr[0..4). */
struct toasim_client {
	__u8 family;
	__u8 has_port;
	__be16 port;
	__u8 addr[16];
};

/* A flow as the server sees it: gateway address and port -> server. */
struct toasim_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 pad[3];
};

struct toasim_flow {
	struct toasim_client client;
	__u64 expires_ns;
};

struct toasim_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct toasim_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#endif
