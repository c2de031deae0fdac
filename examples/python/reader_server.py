#!/usr/bin/env python3
"""A server to run behind toasim (Python 3 standard library only).

For every TCP connection and UDP datagram it asks the decoder (kernel module
or eBPF) for the client with every ABI of kmod/include/uapi/toasim.h and
reports what it got as one JSON line, on stdout and back to the client.
examples/node/reader-server.mjs and examples/c/reader-server.c take the same
flags and print the same report; only "reader" differs.

    python3 examples/python/reader_server.py --tcp 192.0.2.10:8080 --udp 192.0.2.10:5353

The TCP options need no input, so plain socket.getsockopt(IPPROTO_IP, opt,
buflen) reads them. The UDP lookup (2048) sends its key in the same buffer it
gets the answer in, which socket.getsockopt cannot do: it goes through
ctypes, as getpeername does (socket.getpeername gives an IPv4 socket's
caller too small a buffer for the IPv6 client a decoder may return). UDP lookups are keyed on the server's bound address: bind a specific
address. On a wildcard the lookup is still made, and its error reported.

One connection is served at a time (read, report, close): a test server.
"""

import ctypes
import json
import os
import re
import selectors
import signal
import socket
import struct
import sys
import time

READ_TIMEOUT_S = 2.0
DRAIN_S = 0.5
PAYLOAD_BYTES = 64

# The optnames of toasim.h.
SO_TTM_PEER = 1345
SO_UOA = 2048
SO_TOA_CTL = 2049
SO_TOA_LOOKUP = 4096

# Linux AF_* values as the layouts carry them (socket.AF_* are the same).
AF_INET = 2
AF_INET6 = 10

# The same names the Node layer (src/sockopt/errors.ts) and the C reader use.
ERRNO_NAMES = {
    1: "EPERM",
    2: "ENOENT",
    4: "EINTR",
    9: "EBADF",
    11: "EAGAIN",
    12: "ENOMEM",
    13: "EACCES",
    14: "EFAULT",
    16: "EBUSY",
    22: "EINVAL",
    28: "ENOSPC",
    34: "ERANGE",
    88: "ENOTSOCK",
    92: "ENOPROTOOPT",
    95: "EOPNOTSUPP",
    97: "EAFNOSUPPORT",
    105: "ENOBUFS",
    107: "ENOTCONN",
}

USAGE = """usage: reader-server --tcp ADDR:PORT | --udp ADDR:PORT [...] [--count N] [--ready FILE]
  ADDR is IPv4 (192.0.2.10) or bracketed IPv6 ([2001:db8:5::10], [::] for dual stack); PORT 0 picks one.
  --count N     exit after N reports
  --ready FILE  write "tcp|udp ADDR:PORT" lines (the bound addresses) to FILE once listening"""


class ReportError(Exception):
    """A lookup that failed; `obj` is its report object."""

    def __init__(self, obj):
        super().__init__(obj)
        self.obj = obj


def errno_error(e):
    return ReportError({"ok": False, "errno": e, "error": ERRNO_NAMES.get(e, "ERRNO_%d" % e)})


def short(length):
    return ReportError({"ok": False, "error": "SHORT_BUFFER", "length": length})


def bad_family(af):
    return ReportError({"ok": False, "error": "BAD_FAMILY", "af": af})


def family_of(af):
    if af == AF_INET:
        return 4
    if af == AF_INET6:
        return 6
    raise bad_family(af)


def addr_obj(family, raw, port):
    """{family, address, port}; raw holds 4 (IPv4) or 16 bytes."""
    if family == 4:
        text = socket.inet_ntop(socket.AF_INET, raw[:4])
    else:
        text = socket.inet_ntop(socket.AF_INET6, raw[:16])
    return {"family": family, "address": text, "port": port}


def normalize(family, host, port):
    """Python's text for an address (with a %scope on link-local) as inet_ntop prints it."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    raw = socket.inet_pton(af, host.split("%", 1)[0])
    return addr_obj(family, raw, port)


_name_buf = ctypes.create_string_buffer(128)
_name_len = ctypes.c_uint32(0)


def sock_addr(sock, peer):
    """getpeername/getsockname into a sockaddr_storage-sized buffer, decoded by its family.

    Not socket.getpeername(): on an AF_INET socket it gives the kernel a
    16-byte buffer, so an IPv6 client that a decoder returns there (the
    "inet6" NAT64 behaviour) would come back cut short.
    """
    fn = libc_name_call("getpeername" if peer else "getsockname")
    ctypes.memset(_name_buf, 0, ctypes.sizeof(_name_buf))
    _name_len.value = ctypes.sizeof(_name_buf)
    if fn(sock.fileno(), _name_buf, ctypes.byref(_name_len)) != 0:
        raise OSError(ctypes.get_errno(), "getpeername" if peer else "getsockname")
    b = _name_buf.raw[: min(_name_len.value, ctypes.sizeof(_name_buf))]
    (af,) = struct.unpack_from("=H", b, 0) if len(b) >= 2 else (0,)
    need = 16 if af == AF_INET else 28
    if af not in (AF_INET, AF_INET6):
        raise bad_family(af)
    if len(b) < need:
        raise short(len(b))
    (port,) = struct.unpack_from("!H", b, 2)
    return addr_obj(family_of(af), b[4:8] if af == AF_INET else b[8:24], port)


def fixed_opt(sock, optname, size):
    """getsockopt with a buffer and no input: the bytes the kernel wrote."""
    try:
        b = sock.getsockopt(socket.IPPROTO_IP, optname, size)
    except OSError as e:
        raise errno_error(e.errno) from None
    if len(b) < size:
        raise short(len(b))
    return b


def found(af, raw, port):
    return {"ok": True, **addr_obj(family_of(af), raw, port)}


def read_toa_ctl(sock):
    # union {be32 ip; be32 ip6[4]} addr; be16 port; u8 family; u8 toa_set
    b = fixed_opt(sock, SO_TOA_CTL, 20)
    (port,) = struct.unpack_from("!H", b, 16)
    family = family_of(b[18])
    return {"ok": True, **addr_obj(family, b[0:16], port), "toaSet": b[19] != 0}


def read_toa_lookup(sock):
    # struct in6_addr saddr; be16 port; u16 pad. Always IPv6 (v6 client, v4 socket).
    b = fixed_opt(sock, SO_TOA_LOOKUP, 20)
    (port,) = struct.unpack_from("!H", b, 16)
    return found(AF_INET6, b[0:16], port)


def read_ttm(sock):
    # u16 af (host order); be16 port; union {u32 all[4]; ...} addr
    b = fixed_opt(sock, SO_TTM_PEER, 20)
    (af,) = struct.unpack_from("=H", b, 0)
    (port,) = struct.unpack_from("!H", b, 2)
    return found(af, b[4:20], port)


_libc = None
_names = {}


def libc_name_call(name):
    """libc's getpeername or getsockname, through ctypes."""
    if name not in _names:
        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
        fn.restype = ctypes.c_int
        _names[name] = fn
    return _names[name]


def libc_getsockopt():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        fn = lib.getsockopt
        fn.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_uint32),
        ]
        fn.restype = ctypes.c_int
        _libc = fn
    return _libc


# Reused for every lookup, zeroed before each.
_uoa_buf = ctypes.create_string_buffer(64)
_uoa_len = ctypes.c_uint32(0)


def raw16(family, host):
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    return socket.inet_pton(af, host).ljust(16, b"\0")


def read_uoa(sock, source, dest, form):
    """2048 with the 56-byte (noa) or 58-byte (dpvs) buffer; the key goes in, the answer out."""
    af = AF_INET if source["family"] == 4 else AF_INET6
    saddr = raw16(source["family"], source["address"])
    daddr = raw16(dest["family"], dest["address"])
    if form == "noa":
        # in: saddr(16) daddr(16) be16 sport be16 dport u8 af; out: real_saddr(16) be16 real_sport u8 real_af
        size = 56
        req = saddr + daddr + struct.pack("!HHB", source["port"], dest["port"], af)
    else:
        # in: u16 af (host) saddr(16) daddr(16) be16 sport be16 dport; out: u16 real_af real_saddr(16) be16 real_sport
        size = 58
        req = struct.pack("=H", af) + saddr + daddr + struct.pack("!HH", source["port"], dest["port"])
    ctypes.memset(_uoa_buf, 0, ctypes.sizeof(_uoa_buf))
    ctypes.memmove(_uoa_buf, req, len(req))
    _uoa_len.value = size
    rc = libc_getsockopt()(sock.fileno(), socket.IPPROTO_IP, SO_UOA, _uoa_buf, ctypes.byref(_uoa_len))
    if rc != 0:
        raise errno_error(ctypes.get_errno())
    if _uoa_len.value < size:
        raise short(_uoa_len.value)
    b = _uoa_buf.raw[:size]
    if form == "noa":
        (port,) = struct.unpack_from("!H", b, 53)
        return found(b[55], b[37:53], port)
    (af_out,) = struct.unpack_from("=H", b, 38)
    (port,) = struct.unpack_from("!H", b, 56)
    return found(af_out, b[40:56], port)


def lookup(fn, *args):
    try:
        return fn(*args)
    except ReportError as e:
        return e.obj


def address(sock, peer):
    try:
        return sock_addr(sock, peer)
    except OSError as e:
        return errno_error(e.errno).obj
    except ReportError as e:
        return e.obj


def payload_text(data):
    # "replace": one U+FFFD per maximal invalid subsequence, like Node's TextDecoder.
    return data[:PAYLOAD_BYTES].decode("utf-8", "replace")


def dump(report):
    return json.dumps(report, ensure_ascii=False, separators=(",", ":"))


def tcp_report(conn, data):
    return dump(
        {
            "reader": "python",
            "proto": "tcp",
            "local": address(conn, False),
            "peer": address(conn, True),
            "toaCtl": lookup(read_toa_ctl, conn),
            "toaLookup": lookup(read_toa_lookup, conn),
            "ttm": lookup(read_ttm, conn),
            "payload": payload_text(data),
        }
    )


def udp_report(sock, data, src):
    family = 4 if sock.family == socket.AF_INET else 6
    peer = normalize(family, src[0], src[1])
    local = address(sock, False)
    if local.get("ok") is False:
        noa = dpvs = local
    else:
        noa = lookup(read_uoa, sock, peer, local, "noa")
        dpvs = lookup(read_uoa, sock, peer, local, "dpvs")
    return dump(
        {
            "reader": "python",
            "proto": "udp",
            "local": local,
            "peer": peer,
            "uoaNoa": noa,
            "uoaDpvs": dpvs,
            "payload": payload_text(data),
        }
    )


def emit(line):
    sys.stdout.buffer.write(line.encode("utf-8") + b"\n")
    sys.stdout.flush()


def serve_tcp(listener):
    try:
        conn, _ = listener.accept()
    except OSError:
        return False
    with conn:
        data = b""
        conn.setblocking(True)
        conn.settimeout(READ_TIMEOUT_S)
        try:
            data = conn.recv(4096)
        except OSError:
            pass
        line = tcp_report(conn, data)
        emit(line)
        try:
            conn.sendall(line.encode("utf-8") + b"\n")
            # Half-close, then read until the peer closes: closing with unread
            # input would send a reset that can destroy the report in flight.
            conn.shutdown(socket.SHUT_WR)
            until = time.monotonic() + DRAIN_S
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    break
                conn.settimeout(left)
                if not conn.recv(4096):
                    break
        except OSError:
            pass
    return True


def serve_udp(sock):
    try:
        data, src = sock.recvfrom(65536)
    except OSError:
        return False
    line = udp_report(sock, data, src)
    emit(line)
    try:
        sock.sendto(line.encode("utf-8") + b"\n", src)
    except OSError:
        pass
    return True


def usage_error(message):
    sys.stderr.write("reader-server: %s\n%s\n" % (message, USAGE))
    sys.exit(2)


def parse_endpoint(text):
    m = re.fullmatch(r"\[([^\]]+)\]:([0-9]{1,5})", text) or re.fullmatch(r"([0-9.]+):([0-9]{1,5})", text)
    if m is None:
        usage_error("bad endpoint %s (want ADDR:PORT or [V6]:PORT)" % json.dumps(text))
    family = 6 if text.startswith("[") else 4
    port = int(m.group(2))
    if port > 65535:
        usage_error("bad port in %s" % json.dumps(text))
    try:
        socket.inet_pton(socket.AF_INET if family == 4 else socket.AF_INET6, m.group(1))
    except OSError:
        usage_error("bad address in %s" % json.dumps(text))
    return family, m.group(1), port


def parse_args(argv):
    opts = {"tcp": [], "udp": [], "count": None, "ready": None}
    i = 0
    while i < len(argv):
        flag = argv[i]
        if flag in ("--help", "-h"):
            print(USAGE)
            sys.exit(0)
        if flag not in ("--tcp", "--udp", "--count", "--ready"):
            usage_error("unknown argument %s" % json.dumps(flag))
        if i + 1 >= len(argv):
            usage_error("%s needs a value" % flag)
        value = argv[i + 1]
        i += 2
        if flag == "--tcp":
            opts["tcp"].append(parse_endpoint(value))
        elif flag == "--udp":
            opts["udp"].append(parse_endpoint(value))
        elif flag == "--count":
            if not re.fullmatch(r"[1-9][0-9]{0,8}", value):
                usage_error("--count wants a positive integer")
            opts["count"] = int(value)
        else:
            opts["ready"] = value
    if not opts["tcp"] and not opts["udp"]:
        usage_error("give at least one --tcp or --udp")
    return opts


def open_listener(endpoint, udp):
    family, host, port = endpoint
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    sock = socket.socket(af, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        if not udp:
            # Node's listeners set SO_REUSEADDR on TCP; do the same.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == 6:
            # [::] is dual stack whatever net.ipv6.bindv6only says.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        if not udp:
            sock.listen(128)
        # A connection reset between select() and accept(), or a datagram
        # dropped for a bad checksum, must not stall the loop.
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        sys.stderr.write("reader-server: %s %s: %s\n" % ("udp" if udp else "tcp", host, e.strerror))
        sys.exit(1)
    return sock


def endpoint_text(proto, sock):
    a = sock_addr(sock, False)
    if a["family"] == 6:
        return "%s [%s]:%d" % (proto, a["address"], a["port"])
    return "%s %s:%d" % (proto, a["address"], a["port"])


def main(argv):
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    # A ready file left by an earlier run must not announce this one.
    if opts["ready"] is not None:
        try:
            os.unlink(opts["ready"])
        except FileNotFoundError:
            pass
    listeners = [(open_listener(ep, False), False) for ep in opts["tcp"]]
    listeners += [(open_listener(ep, True), True) for ep in opts["udp"]]
    if opts["ready"] is not None:
        tmp = "%s.%d.tmp" % (opts["ready"], os.getpid())
        with open(tmp, "w") as f:
            for sock, udp in listeners:
                f.write(endpoint_text("udp" if udp else "tcp", sock) + "\n")
        os.rename(tmp, opts["ready"])
    sel = selectors.DefaultSelector()
    for sock, udp in listeners:
        sel.register(sock, selectors.EVENT_READ, udp)
    reports = 0
    while opts["count"] is None or reports < opts["count"]:
        for key, _ in sel.select():
            if opts["count"] is not None and reports >= opts["count"]:
                break
            served = serve_udp(key.fileobj) if key.data else serve_tcp(key.fileobj)
            if served:
                reports += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
