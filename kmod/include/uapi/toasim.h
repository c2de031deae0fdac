/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The getsockopt ABIs answered by the toasim module (and by the eBPF
 * decoder), at level IPPROTO_IP on an accepted TCP socket or a bound UDP
 * socket. The layouts are those of the gateways' own reader libraries, so
 * an application built for one of them works unchanged. src/sockopt/abi.ts
 * mirrors this file; test/unit/sockopt-abi.test.ts keeps the two equal.
 */
#ifndef _UAPI_TOASIM_H
#define _UAPI_TOASIM_H

#include <linux/types.h>

#define TOASIM_SO_TTM_PEER	1345	/* Kingsoft kgwttm: struct toasim_ttm_peer */
#define TOASIM_SO_UOA		2048	/* UDP: struct toasim_uoa_noa (56) or _dpvs (58) */
#define TOASIM_SO_TOA_CTL	2049	/* noa: struct toasim_toa_ctl */
#define TOASIM_SO_TOA_LOOKUP	4096	/* DPVS NAT64: struct toasim_toa_lookup */

/* 2049: the client of a TCP socket; toa_set is 0 (and addr the socket's own
 * peer) when no TOA was seen. family is AF_INET or AF_INET6.
 */
struct toasim_toa_ctl {
	union {
		__be32 ip;
		__be32 ip6[4];
	} addr;
	__be16 port;
	__u8 family;
	__u8 toa_set;
};

/* 4096: only for a v6 client on a v4 socket (NAT64); ENOTCONN when the
 * socket is not connected, EINVAL without a TOA.
 */
struct toasim_toa_lookup {
	__u8 saddr[16];		/* struct in6_addr */
	__be16 port;
	__u16 pad;
};

/* 1345: af in host order. */
struct toasim_ttm_peer {
	__u16 af;
	__be16 port;
	union {
		__u32 all[4];
		__be32 ip;
		__be32 ip6[4];
	} addr;
};

/* 2048 with a 56-byte buffer (noa). Input: the datagram's source as
 * received (the gateway's local address) and the server's bound address.
 * IPv4 addresses sit in the first 4 bytes of the 16.
 */
struct toasim_uoa_noa {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 af;
	__u8 real_saddr[16];
	__be16 real_sport;
	__u8 real_af;
} __attribute__((packed));

/* 2048 with a 58-byte buffer (DPVS UOA_SO_GET_LOOKUP); af host order. */
struct toasim_uoa_dpvs {
	__u16 af;
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u16 real_af;
	__u8 real_saddr[16];
	__be16 real_sport;
} __attribute__((packed));

#endif /* _UAPI_TOASIM_H */
