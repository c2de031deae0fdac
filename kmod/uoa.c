// SPDX-License-Identifier: GPL-2.0
/*
 * The UDP side. A netfilter hook early in PRE_ROUTING (before conntrack,
 * which would otherwise track protocol 248 as a flow of its own) reads the
 * UOA of a datagram from a trusted gateway and remembers, per flow, who the
 * client is, for getsockopt(2048):
 *
 *  opp: IP protocol 248, a 4-byte private header and the option sit between
 *       the IP and UDP headers; both are removed so UDP accepts the datagram;
 *  ipo: the option sits in the IPv4 options, which UDP ignores: read only.
 *       The gateway's zero-payload probe datagram (sent when the option did
 *       not fit) is dropped once read: the application never asked for it.
 */
#include <linux/kernel.h>
#include <linux/skbuff.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>
#include "compat.h"
#include "toasim.h"

#define OPP_PROTOCOL 248
#define OPP_HEADER 4
#define UOA_OPTION 31

struct toasim_flow_table *toasim_uoa_flows;

static void save(u8 family, const void *saddr, const void *daddr,
		 const struct udphdr *uh, const struct toasim_addr *client)
{
	struct toasim_flow_key key;

	memset(&key, 0, sizeof(key));
	key.family = family;
	memcpy(&key.saddr, saddr, family == 4 ? 4 : 16);
	memcpy(&key.daddr, daddr, family == 4 ? 4 : 16);
	key.sport = uh->source;
	key.dport = uh->dest;
	toasim_count(UOA_STAT_GOT);
	if (toasim_flow_put(toasim_uoa_flows, &key, client) == 0)
		toasim_count(UOA_STAT_SAVED);
}

/*
 * Checks the opp header at off (linear, off + OPP_HEADER + 2 pulled) and
 * returns its length, or 0 when it is malformed.
 */
static unsigned int opp_length(struct sk_buff *skb, unsigned int off,
			       unsigned int ip_len, struct toasim_addr *client)
{
	const u8 *h = skb->data + off;
	unsigned int len = get_unaligned_be16(h + 2);
	unsigned int version = h[0] >> 4;

	if ((version != 1 && version != 2) || h[1] != IPPROTO_UDP)
		return 0;
	if (len != OPP_HEADER + (version == 1 ? 8 : 20))
		return 0;
	if (off + len + sizeof(struct udphdr) > ip_len ||
	    !pskb_may_pull(skb, off + len + sizeof(struct udphdr)))
		return 0;
	h = skb->data + off;
	if (toasim_parse_uoa_option(h + OPP_HEADER, len - OPP_HEADER,
				    client) != TOASIM_PARSE_FOUND ||
	    h[OPP_HEADER + 1] != len - OPP_HEADER ||
	    client->family != (version == 1 ? 4 : 6))
		return 0;
	return len;
}

/*
 * Removes len bytes at off (just after the network headers) by moving the
 * headers forward over them. The checksum the device may have computed
 * covered the removed bytes, so the stack checks the UDP checksum itself.
 */
static int cut(struct sk_buff *skb, unsigned int off, unsigned int len)
{
	int thoff = skb_transport_header(skb) - skb_network_header(skb);

	if (skb_ensure_writable(skb, off + len))
		return -ENOMEM;
	memmove(skb->data + len, skb->data, off);
	skb_pull(skb, len);
	skb_reset_network_header(skb);
	skb_set_transport_header(skb, thoff > (int)off ? (int)off : thoff);
	if (skb->ip_summed == CHECKSUM_COMPLETE)
		skb->ip_summed = CHECKSUM_NONE;
	return 0;
}

/*
 * A carrier is parsed before its source is judged, so a broken one counts
 * as invalid wherever it comes from. Only a trusted one is stripped; the
 * stack drops the others (protocol 248 has no handler).
 */
static unsigned int uoa_opp4(struct sk_buff *skb, unsigned int ihl,
			     unsigned int ip_len, bool trusted)
{
	struct toasim_addr client;
	struct iphdr *iph;
	unsigned int len;

	if (!pskb_may_pull(skb, ihl + OPP_HEADER + 2))
		goto invalid;
	len = opp_length(skb, ihl, ip_len, &client);
	if (!len)
		goto invalid;
	if (!trusted) {
		toasim_count(UOA_STAT_UNTRUSTED);
		return NF_ACCEPT;
	}
	if (cut(skb, ihl, len))
		return NF_DROP;
	iph = ip_hdr(skb);
	iph->protocol = IPPROTO_UDP;
	iph->tot_len = htons(ip_len - len);
	ip_send_check(iph);
	skb_set_transport_header(skb, ihl);
	save(4, &iph->saddr, &iph->daddr, udp_hdr(skb), &client);
	return NF_ACCEPT;
invalid:
	toasim_count(UOA_STAT_INVALID);
	return trusted ? NF_DROP : NF_ACCEPT;
}

/* The IPv4 options of a UDP datagram: the UOA option, if any. */
static unsigned int uoa_ipo(struct sk_buff *skb, unsigned int ihl,
			    unsigned int ip_len, bool trusted)
{
	const u8 *opt = skb->data + sizeof(struct iphdr);
	unsigned int n = ihl - sizeof(struct iphdr), i = 0;
	struct toasim_addr client;
	const struct iphdr *iph;
	const struct udphdr *uh;

	while (i < n) {
		if (opt[i] == IPOPT_END)
			break;
		if (opt[i] == IPOPT_NOOP) {
			i++;
			continue;
		}
		if (n - i < 2 || opt[i + 1] < 2 || opt[i + 1] > n - i)
			goto invalid;
		if (opt[i] == UOA_OPTION)
			break;
		i += opt[i + 1];
	}
	if (i >= n || opt[i] != UOA_OPTION) {
		if (trusted)
			toasim_count(UOA_STAT_NONE);
		return NF_ACCEPT;
	}
	if (toasim_parse_uoa_option(opt + i, n - i, &client) !=
	    TOASIM_PARSE_FOUND)
		goto invalid;
	if (!trusted) {
		toasim_count(UOA_STAT_UNTRUSTED);
		return NF_ACCEPT;
	}
	if (!pskb_may_pull(skb, ihl + sizeof(struct udphdr)) ||
	    ihl + sizeof(struct udphdr) > ip_len)
		goto invalid;
	iph = ip_hdr(skb);
	uh = (const struct udphdr *)(skb->data + ihl);
	save(4, &iph->saddr, &iph->daddr, uh, &client);
	if (ntohs(uh->len) == sizeof(struct udphdr))
		return NF_DROP;	/* the probe */
	return NF_ACCEPT;
invalid:
	/* ip_rcv_options() judges a broken option list itself. */
	toasim_count(UOA_STAT_INVALID);
	return NF_ACCEPT;
}

static unsigned int uoa_hook4(void *priv, struct sk_buff *skb,
			      const struct nf_hook_state *state)
{
	const struct iphdr *iph = ip_hdr(skb);
	unsigned int ihl = iph->ihl * 4, ip_len = ntohs(iph->tot_len);
	u8 protocol = iph->protocol;
	bool trusted;

	if (protocol != OPP_PROTOCOL &&
	    (protocol != IPPROTO_UDP || ihl == sizeof(*iph)))
		return NF_ACCEPT;
	if (ip_is_fragment(iph) || ip_len > skb->len || ihl > ip_len)
		return NF_ACCEPT;
	trusted = toasim_trusted4(iph->saddr);
	if (!pskb_may_pull(skb, ihl))
		return NF_ACCEPT;
	if (protocol == OPP_PROTOCOL)
		return uoa_opp4(skb, ihl, ip_len, trusted);
	return uoa_ipo(skb, ihl, ip_len, trusted);
}

#if IS_ENABLED(CONFIG_IPV6)
/*
 * Walks the extension headers to the upper-layer header; returns its offset
 * and where its "next header" byte is, or 0 if the chain is not one this
 * hook edits (fragments, ESP, truncation).
 */
static unsigned int ipv6_upper(struct sk_buff *skb, unsigned int *nh_off,
			       u8 *proto)
{
	unsigned int off = sizeof(struct ipv6hdr);
	int hops = 0;

	*nh_off = offsetof(struct ipv6hdr, nexthdr);
	*proto = ipv6_hdr(skb)->nexthdr;
	while (*proto == NEXTHDR_HOP || *proto == NEXTHDR_ROUTING ||
	       *proto == NEXTHDR_DEST) {
		const u8 *eh;

		if (++hops > 8 || !pskb_may_pull(skb, off + 2))
			return 0;
		eh = skb->data + off;
		*nh_off = off;
		*proto = eh[0];
		off += (eh[1] + 1) * 8;
	}
	return off;
}

static unsigned int uoa_hook6(void *priv, struct sk_buff *skb,
			      const struct nf_hook_state *state)
{
	const struct ipv6hdr *ip6 = ipv6_hdr(skb);
	unsigned int off, nh_off, ip_len, len;
	struct toasim_addr client;
	bool trusted;
	u8 proto;

	if (ip6->nexthdr != OPP_PROTOCOL && ip6->nexthdr != NEXTHDR_HOP &&
	    ip6->nexthdr != NEXTHDR_ROUTING && ip6->nexthdr != NEXTHDR_DEST)
		return NF_ACCEPT;
	ip_len = sizeof(*ip6) + ntohs(ip6->payload_len);
	if (ip_len > skb->len)
		return NF_ACCEPT;
	off = ipv6_upper(skb, &nh_off, &proto);
	if (!off || proto != OPP_PROTOCOL)
		return NF_ACCEPT;
	trusted = toasim_trusted6(&ipv6_hdr(skb)->saddr);
	if (off > ip_len || !pskb_may_pull(skb, off + OPP_HEADER + 2))
		goto invalid;
	len = opp_length(skb, off, ip_len, &client);
	if (!len)
		goto invalid;
	if (!trusted) {
		toasim_count(UOA_STAT_UNTRUSTED);
		return NF_ACCEPT;
	}
	if (cut(skb, off, len))
		return NF_DROP;
	ip6 = ipv6_hdr(skb);
	skb_network_header(skb)[nh_off] = IPPROTO_UDP;
	ipv6_hdr(skb)->payload_len = htons(ip_len - len - sizeof(*ip6));
	save(6, &ip6->saddr, &ip6->daddr,
	     (const struct udphdr *)(skb->data + off), &client);
	return NF_ACCEPT;
invalid:
	toasim_count(UOA_STAT_INVALID);
	return trusted ? NF_DROP : NF_ACCEPT;
}
#endif

static const struct nf_hook_ops uoa_ops[] = {
	{
		.hook = uoa_hook4,
		.pf = NFPROTO_IPV4,
		.hooknum = NF_INET_PRE_ROUTING,
		.priority = NF_IP_PRI_CONNTRACK_DEFRAG + 1,
	},
#if IS_ENABLED(CONFIG_IPV6)
	{
		.hook = uoa_hook6,
		.pf = NFPROTO_IPV6,
		.hooknum = NF_INET_PRE_ROUTING,
		.priority = NF_IP6_PRI_CONNTRACK_DEFRAG + 1,
	},
#endif
};

int toasim_uoa_net_init(struct net *net)
{
	return nf_register_net_hooks(net, uoa_ops, ARRAY_SIZE(uoa_ops));
}

void toasim_uoa_net_exit(struct net *net)
{
	nf_unregister_net_hooks(net, uoa_ops, ARRAY_SIZE(uoa_ops));
}

int toasim_uoa_init(void)
{
	toasim_uoa_flows = toasim_flow_table_create("uoa",
						    &toasim_uoa_timeout_secs,
						    UOA_STAT_EXPIRED);
	return toasim_uoa_flows ? 0 : -ENOMEM;
}

void toasim_uoa_exit(void)
{
	toasim_flow_table_destroy(toasim_uoa_flows);
	toasim_uoa_flows = NULL;
}
