// SPDX-License-Identifier: GPL-2.0
/*
 * A table from a flow's 4-tuple (as the server sees it: gateway address and
 * port -> server address and port) to the client a carrier named, with
 * expiry. UOA uses it for UDP flows, and the TCP side for TOAs that arrive
 * on the SYN, before any socket exists. Readers run under RCU (packet path,
 * getsockopt); writers take the table's lock; a delayed work reaps expired
 * entries so the table never holds more than max_flows.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/jhash.h>
#include <linux/random.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <linux/jiffies.h>
#include <linux/hashtable.h>
#include "toasim.h"

#define FLOW_HASH_BITS 12
#define REAP_INTERVAL HZ

struct flow_entry {
	struct hlist_node node;
	struct rcu_head rcu;
	struct toasim_flow_key key;
	struct toasim_addr client;
	unsigned long expires;
};

struct toasim_flow_table {
	const char *name;
	unsigned int *timeout_secs;
	int expired_stat;		/* a toasim_stat, or -1 */
	spinlock_t lock;		/* writers of buckets and count */
	unsigned int count;
	u32 seed;
	struct delayed_work reaper;
	DECLARE_HASHTABLE(buckets, FLOW_HASH_BITS);
};

static u32 key_hash(const struct toasim_flow_table *t,
		    const struct toasim_flow_key *key)
{
	return jhash2((const u32 *)key, sizeof(*key) / sizeof(u32), t->seed);
}

static bool key_equal(const struct toasim_flow_key *a,
		      const struct toasim_flow_key *b)
{
	return !memcmp(a, b, sizeof(*a));
}

static unsigned long timeout_jiffies(const struct toasim_flow_table *t)
{
	return (unsigned long)READ_ONCE(*t->timeout_secs) * HZ;
}

static void reap(struct work_struct *work)
{
	struct toasim_flow_table *t = container_of(to_delayed_work(work),
						   struct toasim_flow_table,
						   reaper);
	struct flow_entry *e;
	struct hlist_node *tmp;
	unsigned int b;

	spin_lock_bh(&t->lock);
	hash_for_each_safe(t->buckets, b, tmp, e, node) {
		if (time_before(jiffies, e->expires))
			continue;
		hash_del_rcu(&e->node);
		t->count--;
		if (t->expired_stat >= 0)
			toasim_count(t->expired_stat);
		kfree_rcu(e, rcu);
	}
	spin_unlock_bh(&t->lock);
	schedule_delayed_work(&t->reaper, REAP_INTERVAL);
}

struct toasim_flow_table *toasim_flow_table_create(const char *name,
						   unsigned int *timeout_secs,
						   int expired_stat)
{
	struct toasim_flow_table *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return NULL;
	t->name = name;
	t->timeout_secs = timeout_secs;
	t->expired_stat = expired_stat;
	spin_lock_init(&t->lock);
	hash_init(t->buckets);
	t->seed = get_random_u32();
	INIT_DELAYED_WORK(&t->reaper, reap);
	schedule_delayed_work(&t->reaper, REAP_INTERVAL);
	return t;
}

/* Callers have stopped every path that reads or writes the table. */
void toasim_flow_table_destroy(struct toasim_flow_table *t)
{
	struct flow_entry *e;
	struct hlist_node *tmp;
	unsigned int b;

	if (!t)
		return;
	cancel_delayed_work_sync(&t->reaper);
	synchronize_rcu();
	hash_for_each_safe(t->buckets, b, tmp, e, node) {
		hash_del(&e->node);
		kfree(e);
	}
	rcu_barrier();		/* entries the reaper handed to kfree_rcu */
	kfree(t);
}

/* New entry, or the same flow's entry refreshed with this client. */
int toasim_flow_put(struct toasim_flow_table *t,
		    const struct toasim_flow_key *key,
		    const struct toasim_addr *client)
{
	u32 h = key_hash(t, key);
	struct flow_entry *e, *old = NULL;

	e = kmalloc(sizeof(*e), GFP_ATOMIC);
	if (!e)
		return -ENOMEM;
	e->key = *key;
	e->client = *client;
	e->expires = jiffies + timeout_jiffies(t);

	spin_lock_bh(&t->lock);
	hash_for_each_possible(t->buckets, old, node, h)
		if (key_equal(&old->key, key))
			break;
	if (old) {
		hlist_replace_rcu(&old->node, &e->node);
		spin_unlock_bh(&t->lock);
		kfree_rcu(old, rcu);
		return 0;
	}
	if (t->count >= READ_ONCE(toasim_max_flows)) {
		spin_unlock_bh(&t->lock);
		kfree(e);
		return -ENOSPC;
	}
	hash_add_rcu(t->buckets, &e->node, h);
	t->count++;
	spin_unlock_bh(&t->lock);
	return 0;
}

bool toasim_flow_get(struct toasim_flow_table *t,
		     const struct toasim_flow_key *key,
		     struct toasim_addr *client, bool remove)
{
	u32 h = key_hash(t, key);
	struct flow_entry *e;
	bool found = false;

	if (remove) {
		spin_lock_bh(&t->lock);
		hash_for_each_possible(t->buckets, e, node, h) {
			if (!key_equal(&e->key, key))
				continue;
			if (time_before(jiffies, e->expires)) {
				*client = e->client;
				found = true;
			}
			hash_del_rcu(&e->node);
			t->count--;
			kfree_rcu(e, rcu);
			break;
		}
		spin_unlock_bh(&t->lock);
		return found;
	}

	rcu_read_lock();
	hash_for_each_possible_rcu(t->buckets, e, node, h) {
		if (key_equal(&e->key, key) &&
		    time_before(jiffies, READ_ONCE(e->expires))) {
			*client = e->client;
			found = true;
			break;
		}
	}
	rcu_read_unlock();
	return found;
}

unsigned int toasim_flow_count(struct toasim_flow_table *t)
{
	return READ_ONCE(t->count);
}
