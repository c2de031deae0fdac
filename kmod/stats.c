// SPDX-License-Identifier: GPL-2.0
/*
 * Counters, per CPU, shown in /proc/net/toa_stats and /proc/net/uoa_stats
 * with one column per CPU, as the vendors' modules show them (tools parse
 * those files). The files are created in every network namespace: a file
 * made only in the initial one is invisible to a server in a container.
 * The counts themselves are global to the module.
 */
#include <linux/kernel.h>
#include <linux/percpu.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/net_namespace.h>
#include "toasim.h"

DEFINE_PER_CPU(struct toasim_stats, toasim_stats);

/* The vendors' rows first, in their order; toasim's own after them. */
static const char *const names[TOASIM_STAT_NR] = {
	[TOA_STAT_SYN_RECV_SOCK_TOA] = "syn_recv_sock_toa",
	[TOA_STAT_SYN_RECV_SOCK_NO_TOA] = "syn_recv_sock_no_toa",
	[TOA_STAT_GETNAME_TOA_OK] = "getname_toa_ok",
	[TOA_STAT_GETNAME_TOA_MISMATCH] = "getname_toa_mismatch",
	[TOA_STAT_GETNAME_TOA_BYPASS] = "getname_toa_bypass",
	[TOA_STAT_GETNAME_TOA_EMPTY] = "getname_toa_empty",
	[TOA_STAT_IP6_ADDRESS_ALLOC] = "ip6_address_alloc",
	[TOA_STAT_IP6_ADDRESS_FREE] = "ip6_address_free",
	[TOA_STAT_MALFORMED] = "toa_malformed",
	[TOA_STAT_UNTRUSTED] = "toa_untrusted",
	[TOA_STAT_SYN_SAVED] = "syn_toa_saved",
	[UOA_STAT_SUCCESS] = "success",
	[UOA_STAT_MISS] = "miss",
	[UOA_STAT_INVALID] = "invalid",
	[UOA_STAT_GOT] = "got",
	[UOA_STAT_NONE] = "none",
	[UOA_STAT_SAVED] = "saved",
	[UOA_STAT_UNTRUSTED] = "untrusted",
	[UOA_STAT_EXPIRED] = "expired",
};

static void show_rows(struct seq_file *seq, unsigned int from,
		      unsigned int to)
{
	unsigned int s;
	int cpu;

	seq_printf(seq, "%-25s ", "");
	for_each_possible_cpu(cpu)
		seq_printf(seq, "CPU%-8d", cpu);
	seq_putc(seq, '\n');
	for (s = from; s < to; s++) {
		seq_printf(seq, "%-25s:", names[s]);
		for_each_possible_cpu(cpu)
			seq_printf(seq, "%-10llu ",
				   per_cpu(toasim_stats, cpu).v[s]);
		seq_putc(seq, '\n');
	}
}

/*
 * How many entries a table holds now (not a per-CPU count): in the first
 * column, so a reader that sums the columns reads it right. Zero once
 * every socket is closed and every UDP flow expired: a leak shows here.
 */
static void show_gauge(struct seq_file *seq, const char *name,
		       unsigned int value)
{
	int cpu, first = 1;

	seq_printf(seq, "%-25s:", name);
	for_each_possible_cpu(cpu) {
		seq_printf(seq, "%-10u ", first ? value : 0);
		first = 0;
	}
	seq_putc(seq, '\n');
}

static int toa_stats_show(struct seq_file *seq, void *v)
{
	show_rows(seq, 0, TOA_STAT_NR);
	show_gauge(seq, "sock_entries", toasim_sock_count());
	show_gauge(seq, "syn_entries", toasim_syn_pending());
	return 0;
}

static int uoa_stats_show(struct seq_file *seq, void *v)
{
	show_rows(seq, UOA_STAT_SUCCESS, TOASIM_STAT_NR);
	show_gauge(seq, "flow_entries",
		   toasim_uoa_flows ? toasim_flow_count(toasim_uoa_flows) : 0);
	return 0;
}

int toasim_proc_init(struct net *net)
{
	if (!proc_create_single("toa_stats", 0444, net->proc_net,
				toa_stats_show))
		return -ENOMEM;
	if (!proc_create_single("uoa_stats", 0444, net->proc_net,
				uoa_stats_show)) {
		remove_proc_entry("toa_stats", net->proc_net);
		return -ENOMEM;
	}
	return 0;
}

void toasim_proc_exit(struct net *net)
{
	remove_proc_entry("uoa_stats", net->proc_net);
	remove_proc_entry("toa_stats", net->proc_net);
}
