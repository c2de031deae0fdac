// SPDX-License-Identifier: MIT
/*
 * A server to run behind toasim: for every TCP connection and UDP datagram
 * it asks the decoder (kernel module or eBPF) for the client with every ABI
 * of kmod/include/uapi/toasim.h and reports what it got as one JSON line, on
 * stdout and back to the client. examples/node/reader-server.mjs and
 * examples/python/reader_server.py take the same flags and print the same
 * report; only "reader" differs.
 *
 *   ./reader-server --tcp 192.0.2.10:8080 --udp 192.0.2.10:5353
 *
 * UDP lookups are keyed on the server's bound address: bind a specific
 * address. On a wildcard the lookup is still made, and its error reported.
 *
 * One connection is served at a time (read, report, close): a test server,
 * kept simple so that the getsockopt calls are easy to read.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../kmod/include/uapi/toasim.h"

#define MAX_LISTENERS 64
#define READ_TIMEOUT_MS 2000
#define DRAIN_MS 500
#define PAYLOAD_BYTES 64

static const char usage[] =
	"usage: reader-server --tcp ADDR:PORT | --udp ADDR:PORT [...] [--count N] [--ready FILE]\n"
	"  ADDR is IPv4 (192.0.2.10) or bracketed IPv6 ([2001:db8:5::10], [::] for dual stack); PORT 0 picks one.\n"
	"  --count N     exit after N reports\n"
	"  --ready FILE  write \"tcp|udp ADDR:PORT\" lines (the bound addresses) to FILE once listening\n";

struct listener {
	int fd;
	bool udp;
	const char *text;
};

/* The report under construction; bounded, and far larger than a report. */
struct out {
	char buf[4096];
	size_t len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len >= sizeof(o->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < sizeof(o->buf) - o->len ? (size_t)n : sizeof(o->buf) - o->len - 1;
}

static void usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "reader-server: %s%s%s\n%s", msg, arg ? " " : "", arg ? arg : "", usage);
	exit(2);
}

/* The same names the Node layer (src/sockopt/errors.ts) and the Python reader use. */
static const char *errno_name(int e, char *spare, size_t n)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINTR: return "EINTR";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case ENOTSOCK: return "ENOTSOCK";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case ENOBUFS: return "ENOBUFS";
	case ENOTCONN: return "ENOTCONN";
	default:
		snprintf(spare, n, "ERRNO_%d", e);
		return spare;
	}
}

static void put_errno(struct out *o, int e)
{
	char spare[32];

	put(o, "{\"ok\":false,\"errno\":%d,\"error\":\"%s\"}", e, errno_name(e, spare, sizeof(spare)));
}

static void put_short(struct out *o, socklen_t len)
{
	put(o, "{\"ok\":false,\"error\":\"SHORT_BUFFER\",\"length\":%u}", (unsigned)len);
}

static void put_bad_family(struct out *o, unsigned af)
{
	put(o, "{\"ok\":false,\"error\":\"BAD_FAMILY\",\"af\":%u}", af);
}

/* 4 or 6 for AF_INET / AF_INET6, 0 otherwise. */
static int family_of(unsigned af)
{
	return af == AF_INET ? 4 : af == AF_INET6 ? 6 : 0;
}

/* "family":F,"address":"A","port":P, for 4 (IPv4) or 16 bytes; port in network order. */
static void put_addr_fields(struct out *o, int family, const void *addr, uint16_t be_port)
{
	char text[INET6_ADDRSTRLEN];

	if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, text, sizeof(text)))
		text[0] = '\0';
	put(o, "\"family\":%d,\"address\":\"%s\",\"port\":%u", family, text, (unsigned)ntohs(be_port));
}

static void put_sockaddr(struct out *o, const struct sockaddr_storage *ss, socklen_t len)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

	if (len < sizeof(ss->ss_family)) {
		put_short(o, len);
	} else if (ss->ss_family == AF_INET) {
		if (len < sizeof(*in4)) {
			put_short(o, len);
			return;
		}
		put(o, "{");
		put_addr_fields(o, 4, &in4->sin_addr, in4->sin_port);
		put(o, "}");
	} else if (ss->ss_family == AF_INET6) {
		if (len < sizeof(*in6)) {
			put_short(o, len);
			return;
		}
		put(o, "{");
		put_addr_fields(o, 6, &in6->sin6_addr, in6->sin6_port);
		put(o, "}");
	} else {
		put_bad_family(o, ss->ss_family);
	}
}

/* getsockname/getpeername into a report field; returns false (and reports the error) on failure. */
static bool put_name(struct out *o, int fd, bool peer, struct sockaddr_storage *ss, int *err)
{
	socklen_t len = sizeof(*ss);
	int rc;

	memset(ss, 0, sizeof(*ss));
	rc = peer ? getpeername(fd, (struct sockaddr *)ss, &len)
		  : getsockname(fd, (struct sockaddr *)ss, &len);
	if (rc != 0) {
		*err = errno;
		put_errno(o, *err);
		return false;
	}
	put_sockaddr(o, ss, len);
	return true;
}

/* The ok-object of a lookup: family from an AF_* value, address, port. */
static void put_found(struct out *o, unsigned af, const void *addr, uint16_t be_port)
{
	int family = family_of(af);

	if (!family) {
		put_bad_family(o, af);
		return;
	}
	put(o, "{\"ok\":true,");
	put_addr_fields(o, family, addr, be_port);
	put(o, "}");
}

static void put_toa_ctl(struct out *o, int fd)
{
	struct toasim_toa_ctl v;
	socklen_t len = sizeof(v);
	int family;

	memset(&v, 0, sizeof(v));
	if (getsockopt(fd, IPPROTO_IP, TOASIM_SO_TOA_CTL, &v, &len) != 0) {
		put_errno(o, errno);
		return;
	}
	if (len < sizeof(v)) {
		put_short(o, len);
		return;
	}
	family = family_of(v.family);
	if (!family) {
		put_bad_family(o, v.family);
		return;
	}
	put(o, "{\"ok\":true,");
	put_addr_fields(o, family, &v.addr, v.port);
	put(o, ",\"toaSet\":%s}", v.toa_set ? "true" : "false");
}

static void put_toa_lookup(struct out *o, int fd)
{
	struct toasim_toa_lookup v;
	socklen_t len = sizeof(v);

	memset(&v, 0, sizeof(v));
	if (getsockopt(fd, IPPROTO_IP, TOASIM_SO_TOA_LOOKUP, &v, &len) != 0) {
		put_errno(o, errno);
		return;
	}
	if (len < sizeof(v)) {
		put_short(o, len);
		return;
	}
	/* Always IPv6: this ABI is for the v6 client of a v4 socket. */
	put_found(o, AF_INET6, v.saddr, v.port);
}

static void put_ttm(struct out *o, int fd)
{
	struct toasim_ttm_peer v;
	socklen_t len = sizeof(v);

	memset(&v, 0, sizeof(v));
	if (getsockopt(fd, IPPROTO_IP, TOASIM_SO_TTM_PEER, &v, &len) != 0) {
		put_errno(o, errno);
		return;
	}
	if (len < sizeof(v)) {
		put_short(o, len);
		return;
	}
	put_found(o, v.af, &v.addr, v.port);
}

/* The 16-byte address and the port of a sockaddr; IPv4 in the first 4 bytes. */
static void addr_bytes(const struct sockaddr_storage *ss, uint8_t out[16], uint16_t *be_port)
{
	memset(out, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;

		memcpy(out, &in4->sin_addr, 4);
		*be_port = in4->sin_port;
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		memcpy(out, &in6->sin6_addr, 16);
		*be_port = in6->sin6_port;
	}
}

static void put_uoa_noa(struct out *o, int fd, const struct sockaddr_storage *src,
			const struct sockaddr_storage *dst)
{
	struct toasim_uoa_noa v;
	socklen_t len = sizeof(v);
	uint16_t sport, dport;

	memset(&v, 0, sizeof(v));
	addr_bytes(src, v.saddr, &sport);
	addr_bytes(dst, v.daddr, &dport);
	v.sport = sport;
	v.dport = dport;
	v.af = (uint8_t)src->ss_family;
	if (getsockopt(fd, IPPROTO_IP, TOASIM_SO_UOA, &v, &len) != 0) {
		put_errno(o, errno);
		return;
	}
	if (len < sizeof(v)) {
		put_short(o, len);
		return;
	}
	put_found(o, v.real_af, v.real_saddr, v.real_sport);
}

static void put_uoa_dpvs(struct out *o, int fd, const struct sockaddr_storage *src,
			 const struct sockaddr_storage *dst)
{
	struct toasim_uoa_dpvs v;
	socklen_t len = sizeof(v);
	uint16_t sport, dport;

	memset(&v, 0, sizeof(v));
	v.af = src->ss_family;
	addr_bytes(src, v.saddr, &sport);
	addr_bytes(dst, v.daddr, &dport);
	v.sport = sport;
	v.dport = dport;
	if (getsockopt(fd, IPPROTO_IP, TOASIM_SO_UOA, &v, &len) != 0) {
		put_errno(o, errno);
		return;
	}
	if (len < sizeof(v)) {
		put_short(o, len);
		return;
	}
	put_found(o, v.real_af, v.real_saddr, v.real_sport);
}

static void put_codepoint(struct out *o, uint32_t cp)
{
	if (cp == '"' || cp == '\\')
		put(o, "\\%c", (char)cp);
	else if (cp == '\b')
		put(o, "\\b");
	else if (cp == '\f')
		put(o, "\\f");
	else if (cp == '\n')
		put(o, "\\n");
	else if (cp == '\r')
		put(o, "\\r");
	else if (cp == '\t')
		put(o, "\\t");
	else if (cp < 0x20)
		put(o, "\\u%04x", (unsigned)cp);
	else if (cp < 0x80)
		put(o, "%c", (char)cp);
	else if (cp < 0x800)
		put(o, "%c%c", (char)(0xc0 | cp >> 6), (char)(0x80 | (cp & 0x3f)));
	else if (cp < 0x10000)
		put(o, "%c%c%c", (char)(0xe0 | cp >> 12), (char)(0x80 | ((cp >> 6) & 0x3f)),
		    (char)(0x80 | (cp & 0x3f)));
	else
		put(o, "%c%c%c%c", (char)(0xf0 | cp >> 18), (char)(0x80 | ((cp >> 12) & 0x3f)),
		    (char)(0x80 | ((cp >> 6) & 0x3f)), (char)(0x80 | (cp & 0x3f)));
}

/*
 * The payload as a JSON string: the first PAYLOAD_BYTES bytes decoded as
 * UTF-8 the way the WHATWG decoder (Node's TextDecoder) and Python's
 * "replace" handler do it, one U+FFFD per maximal invalid subsequence, so
 * the three readers print the same text for any bytes.
 */
static void put_payload(struct out *o, const uint8_t *p, size_t n)
{
	uint32_t cp = 0;
	unsigned need = 0, seen = 0;
	uint8_t lower = 0x80, upper = 0xbf;
	size_t i = 0;

	if (n > PAYLOAD_BYTES)
		n = PAYLOAD_BYTES;
	put(o, "\"");
	while (i < n) {
		uint8_t b = p[i];

		if (need == 0) {
			i++;
			if (b < 0x80) {
				put_codepoint(o, b);
			} else if (b >= 0xc2 && b <= 0xdf) {
				need = 1;
				cp = b & 0x1f;
			} else if (b >= 0xe0 && b <= 0xef) {
				if (b == 0xe0)
					lower = 0xa0;
				if (b == 0xed)
					upper = 0x9f;
				need = 2;
				cp = b & 0xf;
			} else if (b >= 0xf0 && b <= 0xf4) {
				if (b == 0xf0)
					lower = 0x90;
				if (b == 0xf4)
					upper = 0x8f;
				need = 3;
				cp = b & 0x7;
			} else {
				put_codepoint(o, 0xfffd);
			}
			continue;
		}
		if (b < lower || b > upper) {
			/* The byte is not consumed: it starts the next sequence. */
			cp = 0;
			need = seen = 0;
			lower = 0x80;
			upper = 0xbf;
			put_codepoint(o, 0xfffd);
			continue;
		}
		i++;
		lower = 0x80;
		upper = 0xbf;
		cp = cp << 6 | (b & 0x3f);
		if (++seen == need) {
			put_codepoint(o, cp);
			cp = 0;
			need = seen = 0;
		}
	}
	if (need)
		put_codepoint(o, 0xfffd);
	put(o, "\"");
}

static long count = -1;
static long reports;

static void emit(struct out *o)
{
	put(o, "\n");
	fwrite(o->buf, 1, o->len, stdout);
	fflush(stdout);
	reports++;
}

static bool done(void)
{
	return count > 0 && reports >= count;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void serve_tcp(int lfd)
{
	uint8_t buf[4096];
	ssize_t n = 0;
	struct pollfd p;
	struct sockaddr_storage ss;
	struct out o = { .len = 0 };
	long long until;
	int fd, err;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	p.fd = fd;
	p.events = POLLIN;
	if (poll(&p, 1, READ_TIMEOUT_MS) > 0) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			n = 0;
	}
	put(&o, "{\"reader\":\"c\",\"proto\":\"tcp\",\"local\":");
	put_name(&o, fd, false, &ss, &err);
	put(&o, ",\"peer\":");
	put_name(&o, fd, true, &ss, &err);
	put(&o, ",\"toaCtl\":");
	put_toa_ctl(&o, fd);
	put(&o, ",\"toaLookup\":");
	put_toa_lookup(&o, fd);
	put(&o, ",\"ttm\":");
	put_ttm(&o, fd);
	put(&o, ",\"payload\":");
	put_payload(&o, buf, (size_t)n);
	put(&o, "}");
	emit(&o);
	send_all(fd, o.buf, o.len);
	/* Half-close, then read until the peer closes: closing with unread
	 * input would send a reset that can destroy the report in flight.
	 */
	shutdown(fd, SHUT_WR);
	until = now_ms() + DRAIN_MS;
	for (;;) {
		long long left = until - now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (recv(fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(fd);
}

static void serve_udp(int fd)
{
	static uint8_t buf[65536];
	struct sockaddr_storage src, local;
	socklen_t slen = sizeof(src);
	struct out o = { .len = 0 }, local_json = { .len = 0 };
	ssize_t n;
	int err = 0;
	bool have_local;

	memset(&src, 0, sizeof(src));
	n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&src, &slen);
	if (n < 0)
		return;
	have_local = put_name(&local_json, fd, false, &local, &err);
	put(&o, "{\"reader\":\"c\",\"proto\":\"udp\",\"local\":%.*s,\"peer\":",
	    (int)local_json.len, local_json.buf);
	put_sockaddr(&o, &src, slen);
	/* Without its own address the lookup cannot be asked: report why. */
	put(&o, ",\"uoaNoa\":");
	if (have_local)
		put_uoa_noa(&o, fd, &src, &local);
	else
		put_errno(&o, err);
	put(&o, ",\"uoaDpvs\":");
	if (have_local)
		put_uoa_dpvs(&o, fd, &src, &local);
	else
		put_errno(&o, err);
	put(&o, ",\"payload\":");
	put_payload(&o, buf, (size_t)n);
	put(&o, "}");
	emit(&o);
	sendto(fd, o.buf, o.len, MSG_NOSIGNAL, (struct sockaddr *)&src, slen);
}

/* "ADDR:PORT" or "[V6]:PORT" into a sockaddr; exits with usage on error. */
static void parse_endpoint(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_text;
	char *end;
	size_t hl;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *close = strstr(text, "]:");

		if (!close)
			usage_error("bad endpoint (want ADDR:PORT or [V6]:PORT):", text);
		hl = (size_t)(close - text - 1);
		port_text = close + 2;
		if (hl >= sizeof(host))
			usage_error("bad address in", text);
		memcpy(host, text + 1, hl);
	} else {
		const char *colon = strrchr(text, ':');

		if (!colon)
			usage_error("bad endpoint (want ADDR:PORT or [V6]:PORT):", text);
		hl = (size_t)(colon - text);
		port_text = colon + 1;
		if (hl >= sizeof(host))
			usage_error("bad address in", text);
		memcpy(host, text, hl);
	}
	host[hl] = '\0';
	errno = 0;
	port = strtol(port_text, &end, 10);
	if (!*port_text || *end || port < 0 || port > 65535 || strlen(port_text) > 5 ||
	    port_text[0] == '-' || port_text[0] == '+' || port_text[0] == ' ')
		usage_error("bad port in", text);
	if (text[0] == '[') {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			usage_error("bad address in", text);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
			usage_error("bad address in", text);
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
	}
}

static int open_listener(const char *text, bool udp)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, zero = 0;

	parse_endpoint(text, &ss, &len);
	/* Non-blocking: a connection reset between poll() and accept(), or a
	 * datagram dropped for a bad checksum, must not stall the loop.
	 */
	fd = socket(ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	/* Node's listeners set SO_REUSEADDR on TCP; do the same. */
	if (!udp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		goto fail;
	/* [::] is dual stack whatever net.ipv6.bindv6only says. */
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) != 0)
		goto fail;
	if (!udp && listen(fd, 128) != 0)
		goto fail;
	return fd;
fail:
	fprintf(stderr, "reader-server: %s %s: %s\n", udp ? "udp" : "tcp", text, strerror(errno));
	exit(1);
}

static void write_ready(const char *path, const struct listener *ls, int n)
{
	char tmp[4096];
	FILE *f;
	int i;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= sizeof(tmp))
		goto fail;
	f = fopen(tmp, "w");
	if (!f)
		goto fail;
	for (i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char text[INET6_ADDRSTRLEN];
		uint8_t addr[16];
		uint16_t port;

		if (getsockname(ls[i].fd, (struct sockaddr *)&ss, &len) != 0)
			goto fail_file;
		addr_bytes(&ss, addr, &port);
		inet_ntop(ss.ss_family, addr, text, sizeof(text));
		fprintf(f, ss.ss_family == AF_INET ? "%s %s:%u\n" : "%s [%s]:%u\n",
			ls[i].udp ? "udp" : "tcp", text, (unsigned)ntohs(port));
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		goto fail;
	return;
fail_file:
	fclose(f);
fail:
	fprintf(stderr, "reader-server: write ready file %s: %s\n", path, strerror(errno));
	unlink(tmp);
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	struct listener parsed[MAX_LISTENERS], ls[MAX_LISTENERS];
	struct pollfd pfds[MAX_LISTENERS];
	const char *ready = NULL;
	struct sigaction sa;
	int n = 0, k = 0, i, pass;

	for (i = 1; i < argc; i++) {
		const char *flag = argv[i];
		const char *value;

		if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(flag, "--tcp") && strcmp(flag, "--udp") && strcmp(flag, "--count") &&
		    strcmp(flag, "--ready"))
			usage_error("unknown argument", flag);
		if (i + 1 >= argc)
			usage_error(flag, "needs a value");
		value = argv[++i];
		if (!strcmp(flag, "--count")) {
			char *end;

			count = strtol(value, &end, 10);
			if (!*value || *end || count <= 0 || count > 999999999 || value[0] == '+')
				usage_error("--count wants a positive integer, got", value);
		} else if (!strcmp(flag, "--ready")) {
			ready = value;
		} else {
			struct sockaddr_storage ss;
			socklen_t len;

			if (n == MAX_LISTENERS)
				usage_error("too many listeners at", value);
			parse_endpoint(value, &ss, &len); /* usage errors before any socket */
			parsed[n].udp = !strcmp(flag, "--udp");
			parsed[n].text = value;
			parsed[n].fd = -1;
			n++;
		}
	}
	if (n == 0)
		usage_error("give at least one --tcp or --udp", NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* A ready file left by an earlier run must not announce this one. */
	if (ready)
		unlink(ready);
	/* TCP listeners first, then UDP, each in command-line order, as the others do. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			if (parsed[i].udp != (pass == 1))
				continue;
			ls[k] = parsed[i];
			ls[k].fd = open_listener(parsed[i].text, parsed[i].udp);
			k++;
		}
	}
	if (ready)
		write_ready(ready, ls, n);

	for (i = 0; i < n; i++) {
		pfds[i].fd = ls[i].fd;
		pfds[i].events = POLLIN;
	}
	while (!done()) {
		if (poll(pfds, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("reader-server: poll");
			return 1;
		}
		for (i = 0; i < n && !done(); i++) {
			if (!(pfds[i].revents & POLLIN))
				continue;
			if (ls[i].udp)
				serve_udp(ls[i].fd);
			else
				serve_tcp(ls[i].fd);
		}
	}
	return 0;
}
