// SPDX-License-Identifier: GPL-2.0
/*
 * TCP socket -> client address, from the handshake until the socket is
 * destroyed. Kept beside the socket, never in it: sk_user_data belongs to
 * the socket's owner and its low bits are flags on modern kernels. Each
 * entry also remembers the gateway-side peer, so an entry can never answer
 * for a different connection that happens to reuse the socket's memory.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/hashtable.h>
#include <linux/hash.h>
#include <linux/spinlock.h>
#include <net/sock.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include "toasim.h"

#define SOCK_HASH_BITS 12

struct sock_entry {
	struct hlist_node node;
	struct rcu_head rcu;
	const struct sock *sk;
	__be16 peer_port;
	struct in6_addr peer;	/* the gateway, as the socket sees it */
	struct toasim_addr client;
};

static DEFINE_HASHTABLE(sock_buckets, SOCK_HASH_BITS);
static DEFINE_SPINLOCK(sock_lock);
static unsigned int sock_entries;	/* under sock_lock */

static void peer_of(const struct sock *sk, struct in6_addr *peer,
		    __be16 *port)
{
	memset(peer, 0, sizeof(*peer));
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6)
		*peer = sk->sk_v6_daddr;
	else
#endif
		peer->s6_addr32[0] = sk->sk_daddr;
	*port = sk->sk_dport;
}

/* Called under sock_lock, with e already unlinked. */
static void free_entry(struct sock_entry *e)
{
	sock_entries--;
	if (e->client.family == 6)
		toasim_count(TOA_STAT_IP6_ADDRESS_FREE);
	kfree_rcu(e, rcu);
}

int toasim_sock_table_init(void)
{
	hash_init(sock_buckets);
	return 0;
}

/* Every probe that could add or read an entry is unregistered by now. */
void toasim_sock_table_exit(void)
{
	struct sock_entry *e;
	struct hlist_node *tmp;
	unsigned int b;

	synchronize_rcu();
	spin_lock_bh(&sock_lock);
	hash_for_each_safe(sock_buckets, b, tmp, e, node) {
		hash_del_rcu(&e->node);
		free_entry(e);
	}
	spin_unlock_bh(&sock_lock);
	rcu_barrier();
}

int toasim_sock_put(const struct sock *sk, const struct toasim_addr *client)
{
	struct sock_entry *e, *old;
	unsigned long key = (unsigned long)sk;

	e = kmalloc(sizeof(*e), GFP_ATOMIC);
	if (!e)
		return -ENOMEM;
	e->sk = sk;
	peer_of(sk, &e->peer, &e->peer_port);
	e->client = *client;
	if (client->family == 6)
		toasim_count(TOA_STAT_IP6_ADDRESS_ALLOC);

	spin_lock_bh(&sock_lock);
	hash_for_each_possible(sock_buckets, old, node, key)
		if (old->sk == sk)
			break;
	if (old) {
		hlist_replace_rcu(&old->node, &e->node);
		free_entry(old);
	} else {
		hash_add_rcu(sock_buckets, &e->node, key);
	}
	sock_entries++;
	spin_unlock_bh(&sock_lock);
	return 0;
}

unsigned int toasim_sock_count(void)
{
	return READ_ONCE(sock_entries);
}

/* False when there is no entry, or the entry is not this connection's. */
bool toasim_sock_get(const struct sock *sk, struct toasim_addr *client)
{
	unsigned long key = (unsigned long)sk;
	struct sock_entry *e;
	struct in6_addr peer;
	__be16 port;
	bool found = false;

	peer_of(sk, &peer, &port);
	rcu_read_lock();
	hash_for_each_possible_rcu(sock_buckets, e, node, key) {
		if (e->sk != sk)
			continue;
		if (e->peer_port == port && ipv6_addr_equal(&e->peer, &peer)) {
			*client = e->client;
			found = true;
		}
		break;
	}
	rcu_read_unlock();
	return found;
}

bool toasim_sock_known(const struct sock *sk)
{
	unsigned long key = (unsigned long)sk;
	struct sock_entry *e;
	bool found = false;

	rcu_read_lock();
	hash_for_each_possible_rcu(sock_buckets, e, node, key)
		if (e->sk == sk) {
			found = true;
			break;
		}
	rcu_read_unlock();
	return found;
}

void toasim_sock_forget(const struct sock *sk)
{
	unsigned long key = (unsigned long)sk;
	struct sock_entry *e;

	/* Called for every TCP socket destroyed: stay lock-free for most. */
	if (!toasim_sock_known(sk))
		return;
	spin_lock_bh(&sock_lock);
	hash_for_each_possible(sock_buckets, e, node, key)
		if (e->sk == sk) {
			hash_del_rcu(&e->node);
			free_entry(e);
			break;
		}
	spin_unlock_bh(&sock_lock);
}
