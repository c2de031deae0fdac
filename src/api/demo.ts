import { fileURLToPath } from "node:url";
import type { Attempt, Outcome } from "../demo/client.js";
import type { Seen } from "../demo/server.js";
import type { ProfileName } from "../fullnat-sim/profiles.js";
import { familyOf, formatEndpoint, formatIp, parseIp } from "../option-codec/address.js";
import { ADDRESS_PLAN } from "../runtime/defaults.js";
import { ToasimError, ToasimErrorCode } from "./errors.js";
import type { DecoderMode, DecoderOptions, GatewaySettings } from "./options.js";
import { up } from "./up.js";

export interface DemoOptions {
  readonly profile?: ProfileName;
  readonly settings?: GatewaySettings;
  readonly decoder?: DecoderMode | DecoderOptions;
  /** Progress lines (setting up, starting the server, tearing down). */
  readonly onProgress?: (line: string) => void;
  /** Why the eBPF decoder was not loaded, when it was not. */
  readonly onNote?: (line: string) => void;
}

export interface DemoRow {
  readonly proto: "tcp" | "udp";
  readonly family: "v4" | "v6" | "nat64";
  /** The client's address and port, as it sent. */
  readonly client: string;
  readonly vip: string;
  /** What the server saw, and how (`via`): a PROXY header, a getsockopt answer, getpeername. */
  readonly seen: (Seen & { readonly via: string }) | { readonly error: string };
  /** The server saw the real client. */
  readonly pass: boolean;
}

export interface DemoResult {
  readonly ok: boolean;
  readonly profile: string;
  /** What decoded: "ebpf", a module's name, or "none". */
  readonly decoder: string;
  readonly results: readonly DemoRow[];
}

/** The client namespace's own address, and one more it binds (AnyIP). */
const SOURCES = {
  4: [ADDRESS_PLAN.client4, "198.51.100.42"],
  6: [ADDRESS_PLAN.client6, "2001:db8:c::42"],
} as const;

const script = (name: string) => fileURLToPath(new URL(`../demo/${name}.js`, import.meta.url));

/**
 * The whole round in one call: an instance, a server in the server
 * namespace that reports the client as an application learns it, TCP and
 * UDP clients from two IPv4 and two IPv6 addresses through every VIP
 * (NAT64 included), and teardown. A row passes when the server saw the
 * real client.
 */
export async function demo(o: DemoOptions = {}): Promise<DemoResult> {
  const say = o.onProgress ?? (() => {});
  const inst = await up(
    {
      ...(o.profile !== undefined ? { profile: o.profile } : {}),
      ...(o.settings !== undefined ? { settings: o.settings } : {}),
      ...(o.decoder !== undefined ? { decoder: o.decoder } : {}),
      maxConnections: 100_000,
    },
    o.onNote ? { onNote: o.onNote } : {},
  );
  try {
    say("starting the server in the server namespace...");
    const first = (proto: "tcp" | "udp") => inst.services.find((s) => s.proto === proto);
    const port = (text: string | undefined, dflt: number) =>
      text === undefined ? dflt : Number(text.slice(text.lastIndexOf(":") + 1));
    const tcpPort = port(first("tcp")?.servers[0], 8080);
    const udpPort = port(first("udp")?.servers[0], 5353);
    const host = (ep: string) => ep.slice(0, ep.lastIndexOf(":")).replace(/^\[|\]$/g, "");
    const udpAddrs = [
      ...new Set(
        inst.services.filter((s) => s.proto === "udp").flatMap((s) => s.servers.map(host)),
      ),
    ];
    const server = inst.spawn("rs", [
      process.execPath,
      script("server"),
      String(tcpPort),
      String(udpPort),
      ...udpAddrs,
    ]);
    await server.waitForOutput(/\S/, { timeoutMs: 10_000, stream: "stdout" });
    const attempts: Attempt[] = [];
    for (const s of inst.services) {
      const vip = parseIp(host(s.vip));
      const cf = familyOf(vip);
      const rf = familyOf(parseIp(host(s.servers[0]!)));
      const family = cf === 4 ? "v4" : rf === 4 ? "nat64" : "v6";
      for (const source of SOURCES[cf])
        attempts.push({
          proto: s.proto,
          family,
          source,
          vip: formatIp(vip),
          port: port(s.vip, 80),
        });
    }
    say(`running ${attempts.length} clients from the client namespace...`);
    const client = await inst.exec(
      "client",
      [process.execPath, script("client"), JSON.stringify(attempts)],
      { timeoutMs: 120_000 },
    );
    if (client.code !== 0)
      throw new ToasimError(
        ToasimErrorCode.exited,
        `the demo clients failed (${client.code}): ${client.stderr.trim()}`,
      );
    const outcomes = client.stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Outcome);
    const results: DemoRow[] = outcomes.map((x) => {
      // What an application would take: a PROXY header, else the decoder's
      // getsockopt answer, else the peer.
      const addr = x.seen?.proxy?.addr ?? x.seen?.sockopt?.addr ?? x.seen?.peer ?? null;
      const seenPort = x.seen?.proxy?.port ?? x.seen?.sockopt?.port ?? x.seen?.peerPort ?? null;
      return {
        proto: x.attempt.proto,
        family: x.attempt.family,
        client: formatEndpoint({ addr: parseIp(x.attempt.source), port: x.clientPort }),
        vip: x.attempt.vip.includes(":")
          ? `[${x.attempt.vip}]:${x.attempt.port}`
          : `${x.attempt.vip}:${x.attempt.port}`,
        seen: x.seen ? { ...x.seen, via: viaOf(x.seen) } : { error: x.error ?? "no answer" },
        pass: addr === x.attempt.source && seenPort === x.clientPort,
      };
    });
    const ok = results.length > 0 && results.every((r) => r.pass);
    return { ok, profile: inst.profile ?? "dpvs", decoder: inst.decoder, results };
  } finally {
    say("tearing down...");
    await inst.stop();
  }
}

function viaOf(seen: Seen): string {
  if (seen.proxy) return "proxy-header";
  if (seen.sockopt) return `getsockopt(${seen.sockopt.optname})`;
  return "getpeername";
}
