// SPDX-License-Identifier: GPL-2.0
/*
 * TCP option and UOA option bytes -> client address. No kernel state: the
 * callers hand in bytes they have already bounds-checked against the packet,
 * and every read here stays inside [opt, opt + len).
 */
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/socket.h>
#include "compat.h"
#include "toasim.h"

#define TCP_OPT_EOL 0
#define TCP_OPT_NOP 1
#define TFO_EXP_MAGIC 0xF989	/* TCP Fast Open's RFC 6994 ExID */
#define UOA_OPTION 31

static void set_v4(struct toasim_addr *a, const u8 *addr)
{
	memset(&a->addr, 0, sizeof(a->addr));
	memcpy(&a->addr.s6_addr32[0], addr, 4);
	a->family = 4;
}

static void set_v6(struct toasim_addr *a, const u8 *addr)
{
	memcpy(&a->addr, addr, 16);
	a->family = 6;
}

/* One option's payload (after kind and length); dlen <= 253. */
static enum toasim_parse_result decode_one(u8 kind, const u8 *d,
					   unsigned int dlen,
					   const struct toasim_kinds *k,
					   struct toasim_addr *out)
{
	bool toa_kind = test_bit(kind, k->port_addr) || kind == k->ttm_kind ||
			kind == k->cdn_kind;
	u16 af;

	if (!toa_kind)
		return TOASIM_PARSE_NONE;
	/* Kinds 253/254 are shared experiments: TFO must never read as TOA. */
	if ((kind == 253 || kind == 254) && dlen >= 2 &&
	    get_unaligned_be16(d) == TFO_EXP_MAGIC)
		return TOASIM_PARSE_NONE;

	memset(out, 0, sizeof(*out));
	if (kind == k->cdn_kind) {
		if (dlen == 5 && d[0] == 1) {
			set_v4(out, d + 1);
			return TOASIM_PARSE_FOUND;
		}
		if (dlen == 17 && d[0] == 2) {
			set_v6(out, d + 1);
			return TOASIM_PARSE_FOUND;
		}
		if (!test_bit(kind, k->port_addr) && kind != k->ttm_kind)
			return TOASIM_PARSE_MALFORMED;
	}
	if (kind == k->ttm_kind && dlen == 20) {
		af = k->ttm_af_network_order ? get_unaligned_be16(d) :
					       get_unaligned((const u16 *)d);
		out->has_port = true;
		out->port = get_unaligned((const __be16 *)(d + 2));
		if (af == AF_INET) {
			set_v4(out, d + 4);
			return TOASIM_PARSE_FOUND;
		}
		if (af == AF_INET6) {
			set_v6(out, d + 4);
			return TOASIM_PARSE_FOUND;
		}
		return TOASIM_PARSE_MALFORMED;
	}
	if (test_bit(kind, k->port_addr)) {
		out->has_port = true;
		out->port = get_unaligned((const __be16 *)d);
		/* 14: ByteDance's port, addr, pad, vport, vaddr; the VIP is not needed */
		if (dlen == 6 || dlen == 14) {
			set_v4(out, d + 2);
			return TOASIM_PARSE_FOUND;
		}
		if (dlen == 18) {
			set_v6(out, d + 2);
			return TOASIM_PARSE_FOUND;
		}
	}
	return TOASIM_PARSE_MALFORMED;
}

/*
 * Walks the options as the kernel's tcp_parse_options() does (same guards
 * for silly and partial lengths). A broken option list, or two TOAs (which
 * one would be the gateway's?), refuses the whole packet; an option of a TOA
 * kind whose length no layout has is counted as malformed unless a good TOA
 * is present too.
 */
enum toasim_parse_result toasim_parse_tcp_options(const u8 *opt,
						  unsigned int len,
						  const struct toasim_kinds *k,
						  struct toasim_addr *out)
{
	struct toasim_addr tmp;
	bool found = false, bad = false;
	unsigned int i = 0;

	while (i < len) {
		u8 kind = opt[i], olen;

		if (kind == TCP_OPT_EOL)
			break;
		if (kind == TCP_OPT_NOP) {
			i++;
			continue;
		}
		if (len - i < 2)
			return TOASIM_PARSE_MALFORMED;
		olen = opt[i + 1];
		if (olen < 2 || olen > len - i)
			return TOASIM_PARSE_MALFORMED;
		switch (decode_one(kind, opt + i + 2, olen - 2, k, &tmp)) {
		case TOASIM_PARSE_FOUND:
			if (found)
				return TOASIM_PARSE_MALFORMED;
			found = true;
			*out = tmp;
			break;
		case TOASIM_PARSE_MALFORMED:
			bad = true;
			break;
		case TOASIM_PARSE_NONE:
			break;
		}
		i += olen;
	}
	if (found)
		return TOASIM_PARSE_FOUND;
	return bad ? TOASIM_PARSE_MALFORMED : TOASIM_PARSE_NONE;
}

/* The UOA option: type 31, length 8 (IPv4 client) or 20 (IPv6 client). */
enum toasim_parse_result toasim_parse_uoa_option(const u8 *opt,
						 unsigned int len,
						 struct toasim_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 2 || opt[0] != UOA_OPTION)
		return TOASIM_PARSE_MALFORMED;
	if (opt[1] > len)
		return TOASIM_PARSE_MALFORMED;
	out->has_port = true;
	if (opt[1] == 8) {
		out->port = get_unaligned((const __be16 *)(opt + 2));
		set_v4(out, opt + 4);
		return TOASIM_PARSE_FOUND;
	}
	if (opt[1] == 20) {
		out->port = get_unaligned((const __be16 *)(opt + 2));
		set_v6(out, opt + 4);
		return TOASIM_PARSE_FOUND;
	}
	return TOASIM_PARSE_MALFORMED;
}
