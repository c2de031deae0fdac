// SPDX-License-Identifier: GPL-2.0
/*
 * The gateway source ranges. Any client that reaches the server directly can
 * put its own TOA in a packet; a carrier is believed only when the packet
 * comes from one of these ranges (the gateways' local address pools).
 */
#include <linux/kernel.h>
#include <linux/inet.h>
#include <linux/string.h>
#include <net/ipv6.h>
#include "toasim.h"

#define TOASIM_MAX_RANGES 32

struct toasim_range {
	u8 family;
	u8 prefix;
	struct in6_addr addr;	/* IPv4 in s6_addr32[0] */
};

static struct toasim_range ranges[TOASIM_MAX_RANGES];
static unsigned int nr_ranges;
static bool trust_any;

static bool prefix_match(const u8 *a, const u8 *b, unsigned int bits)
{
	unsigned int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, bytes))
		return false;
	if (rest == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest))) == 0;
}

static int parse_range(char *tok)
{
	struct toasim_range *r = &ranges[nr_ranges];
	char *slash = strchr(tok, '/');
	unsigned int prefix, max;
	const char *end;

	if (nr_ranges == TOASIM_MAX_RANGES) {
		pr_err("trusted: more than %d ranges\n", TOASIM_MAX_RANGES);
		return -EINVAL;
	}
	if (slash)
		*slash = '\0';
	memset(r, 0, sizeof(*r));
	if (in4_pton(tok, -1, r->addr.s6_addr, -1, &end) && *end == '\0') {
		r->family = 4;
		max = 32;
	} else if (in6_pton(tok, -1, r->addr.s6_addr, -1, &end) &&
		   *end == '\0') {
		r->family = 6;
		max = 128;
	} else {
		pr_err("trusted: \"%s\" is not an IPv4 or IPv6 address\n", tok);
		return -EINVAL;
	}
	prefix = max;
	if (slash && (kstrtouint(slash + 1, 10, &prefix) || prefix > max)) {
		pr_err("trusted: bad prefix length \"/%s\" for %s\n",
		       slash + 1, tok);
		return -EINVAL;
	}
	r->prefix = prefix;
	nr_ranges++;
	return 0;
}

int toasim_trust_parse(const char *spec)
{
	char buf[1024];
	char *cur = buf, *tok;
	int err;

	nr_ranges = 0;
	trust_any = false;
	if (strscpy(buf, spec, sizeof(buf)) < 0) {
		pr_err("trusted is too long\n");
		return -EINVAL;
	}
	while ((tok = strsep(&cur, ",")) != NULL) {
		tok = strim(tok);
		if (*tok == '\0')
			continue;
		if (!strcmp(tok, "any")) {
			trust_any = true;
			continue;
		}
		err = parse_range(tok);
		if (err)
			return err;
	}
	if (!trust_any && nr_ranges == 0)
		pr_warn("trusted is empty: every carrier is refused\n");
	return 0;
}

bool toasim_trusted4(__be32 saddr)
{
	unsigned int i;

	if (trust_any)
		return true;
	for (i = 0; i < nr_ranges; i++)
		if (ranges[i].family == 4 &&
		    prefix_match((const u8 *)&saddr, ranges[i].addr.s6_addr,
				 ranges[i].prefix))
			return true;
	return false;
}

bool toasim_trusted6(const struct in6_addr *saddr)
{
	unsigned int i;

	if (trust_any)
		return true;
	for (i = 0; i < nr_ranges; i++)
		if (ranges[i].family == 6 &&
		    prefix_match(saddr->s6_addr, ranges[i].addr.s6_addr,
				 ranges[i].prefix))
			return true;
	return false;
}
