#!/usr/bin/env node
// A server to run behind toasim: for every TCP connection and UDP datagram it
// asks the decoder (kernel module or eBPF) for the client with every ABI of
// kmod/include/uapi/toasim.h and reports what it got as one JSON line, on
// stdout and back to the client. examples/c/reader-server.c and
// examples/python/reader_server.py take the same flags and print the same
// report; only "reader" differs. It imports the readers as a user does,
// from "toasim/sockopt" (in a checkout: after npm run build).
//
//   node examples/node/reader-server.mjs --tcp 192.0.2.10:8080 --udp 192.0.2.10:5353
//
// UDP lookups are keyed on the server's bound address: bind a specific
// address. On a wildcard the lookup is still made, and its error reported.

import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import {
  formatAddress,
  localName,
  parseAddress,
  peerName,
  SockoptError,
  toaCtl,
  toaLookup,
  ttmPeer,
  uoaLookup,
} from "toasim/sockopt";

const READ_TIMEOUT_MS = 2000;
const DRAIN_MS = 500;
const PAYLOAD_BYTES = 64;
const USAGE = `usage: reader-server --tcp ADDR:PORT | --udp ADDR:PORT [...] [--count N] [--ready FILE]
  ADDR is IPv4 (192.0.2.10) or bracketed IPv6 ([2001:db8:5::10], [::] for dual stack); PORT 0 picks one.
  --count N     exit after N reports
  --ready FILE  write "tcp|udp ADDR:PORT" lines (the bound addresses) to FILE once listening`;

function usageError(message) {
  process.stderr.write(`reader-server: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseEndpoint(text) {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([0-9.]+):(\d{1,5})$/.exec(text);
  if (m === null) usageError(`bad endpoint ${JSON.stringify(text)} (want ADDR:PORT or [V6]:PORT)`);
  const family = text.startsWith("[") ? 6 : 4;
  const port = Number(m[2]);
  if (port > 65535) usageError(`bad port in ${JSON.stringify(text)}`);
  if (m[1].includes("%")) usageError(`scoped addresses are not supported: ${text}`);
  try {
    return { family, address: formatAddress(family, parseAddress(family, m[1])), port };
  } catch (e) {
    usageError(`bad address in ${JSON.stringify(text)}: ${e.message}`);
  }
}

function parseArgs(argv) {
  const opts = { tcp: [], udp: [], count: null, ready: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!["--tcp", "--udp", "--count", "--ready"].includes(flag)) {
      usageError(`unknown argument ${JSON.stringify(flag)}`);
    }
    const value = argv[++i];
    if (value === undefined) usageError(`${flag} needs a value`);
    if (flag === "--tcp") opts.tcp.push(parseEndpoint(value));
    else if (flag === "--udp") opts.udp.push(parseEndpoint(value));
    else if (flag === "--count") {
      if (!/^[1-9][0-9]{0,8}$/.test(value)) usageError(`--count wants a positive integer`);
      opts.count = Number(value);
    } else opts.ready = value;
  }
  if (opts.tcp.length + opts.udp.length === 0) usageError("give at least one --tcp or --udp");
  return opts;
}

// The error object of a report: the errno when a call failed, otherwise the
// layer's code with the number that broke the layout.
function failure(e) {
  if (!(e instanceof SockoptError)) throw e;
  if (e.errno !== null) return { ok: false, errno: e.errno, error: e.errnoName };
  if (e.code === "SHORT_BUFFER") return { ok: false, error: e.code, length: e.got };
  if (e.code === "BAD_FAMILY") return { ok: false, error: e.code, af: e.got };
  return { ok: false, error: e.code };
}

function lookup(fn) {
  try {
    return { ok: true, ...fn() };
  } catch (e) {
    return failure(e);
  }
}

function address(fn) {
  try {
    return fn();
  } catch (e) {
    return failure(e);
  }
}

// ignoreBOM keeps a leading U+FEFF, as the C and Python readers do.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
function payloadText(bytes) {
  return utf8.decode(bytes.subarray(0, PAYLOAD_BYTES));
}

function tcpReport(sock, payload) {
  return JSON.stringify({
    reader: "node",
    proto: "tcp",
    local: address(() => localName(sock)),
    peer: address(() => peerName(sock)),
    toaCtl: lookup(() => toaCtl(sock)),
    toaLookup: lookup(() => toaLookup(sock)),
    ttm: lookup(() => ttmPeer(sock)),
    payload: payloadText(payload),
  });
}

function udpReport(sock, msg, rinfo) {
  const family = rinfo.family === "IPv6" || rinfo.family === 6 ? 6 : 4;
  // Node's text may carry a %scope; the report and the lookup want bare bytes.
  const peer = {
    family,
    address: formatAddress(family, parseAddress(family, rinfo.address)),
    port: rinfo.port,
  };
  const local = address(() => localName(sock));
  const query = { source: peer, dest: local };
  const uoa = (form) => (local.ok === false ? local : lookup(() => uoaLookup(sock, query, form)));
  return JSON.stringify({
    reader: "node",
    proto: "udp",
    local,
    peer,
    uoaNoa: uoa("noa"),
    uoaDpvs: uoa("dpvs"),
    payload: payloadText(msg),
  });
}

const opts = parseArgs(process.argv.slice(2));
let reports = 0;
let stopping = false;

// Called once a report has been delivered; the Nth ends the process.
function delivered() {
  if (opts.count !== null && reports >= opts.count) process.exit(0);
}

function emit(line) {
  process.stdout.write(`${line}\n`);
  reports++;
  if (opts.count !== null && reports >= opts.count) stopping = true;
}

function serveTcp(sock) {
  if (stopping) {
    sock.destroy();
    return;
  }
  let reported = false;
  const report = (payload) => {
    if (reported) return;
    reported = true;
    clearTimeout(timer);
    const line = tcpReport(sock, payload);
    emit(line);
    // Half-close after the report, keep reading until the peer closes (so
    // unread input does not turn the close into a reset that could destroy
    // the report in flight), and give up after DRAIN_MS.
    sock.end(`${line}\n`);
    setTimeout(() => sock.destroy(), DRAIN_MS).unref();
  };
  const timer = setTimeout(() => report(Buffer.alloc(0)), READ_TIMEOUT_MS);
  sock.on("data", (d) => report(d));
  sock.on("end", () => report(Buffer.alloc(0)));
  sock.on("error", () => report(Buffer.alloc(0)));
  sock.on("close", () => {
    clearTimeout(timer);
    if (reported) delivered();
  });
}

function listenTcp(ep) {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a client that sends its request and a FIN at once
    // still gets the report; the socket is ended once the report is out.
    const server = net.createServer({ allowHalfOpen: true }, serveTcp);
    server.once("error", reject);
    server.listen({ host: ep.address, port: ep.port, ipv6Only: false }, () => {
      const a = server.address();
      resolve(`tcp ${endpointText(ep.family, a.address, a.port)}`);
    });
  });
}

function listenUdp(ep) {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: ep.family === 6 ? "udp6" : "udp4", ipv6Only: false });
    sock.once("error", reject);
    sock.on("message", (msg, rinfo) => {
      if (stopping) return;
      const line = udpReport(sock, msg, rinfo);
      emit(line);
      sock.send(`${line}\n`, rinfo.port, rinfo.address, () => delivered());
    });
    sock.bind(ep.port, ep.address, () => {
      const a = sock.address();
      resolve(`udp ${endpointText(ep.family, a.address, a.port)}`);
    });
  });
}

function endpointText(family, text, port) {
  const a = formatAddress(family, parseAddress(family, text));
  return family === 6 ? `[${a}]:${port}` : `${a}:${port}`;
}

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));

// A ready file left by an earlier run must not announce this one.
if (opts.ready !== null) fs.rmSync(opts.ready, { force: true });
try {
  const lines = [];
  for (const ep of opts.tcp) lines.push(await listenTcp(ep));
  for (const ep of opts.udp) lines.push(await listenUdp(ep));
  if (opts.ready !== null) {
    const tmp = `${opts.ready}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${lines.join("\n")}\n`);
    fs.renameSync(tmp, opts.ready);
  }
} catch (e) {
  process.stderr.write(`reader-server: ${e.message}\n`);
  process.exit(1);
}
