import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { READER_ENDPOINTS } from "./lab.js";
import { Bg, run, sleep } from "./proc.js";

// Records what the gateway delivers to the server for every dialect, as
// pcaps of the server side (toasim capture), with a manifest of which
// client each tagged exchange came from: the input of replay.ts, which
// plays the same packets to a server behind the kernel module (in the VM)
// and behind the eBPF decoder (on the host), so the two can be compared
// answer for answer. Runs on the host, without a decoder.

const ROOT = resolve(import.meta.dirname, "../../..");
const CLI = join(ROOT, "bin/toasim.js");

const { values: opt } = parseArgs({ options: { dir: { type: "string" } } });
if (!opt.dir) {
  console.error("usage: record --dir DIR");
  process.exit(2);
}
const DIR = opt.dir;

type Family = "v4" | "v6" | "nat64";
interface Recording {
  readonly name: string;
  readonly args: readonly string[];
  readonly tcp: readonly Family[];
  readonly udp: readonly Family[];
}

const V4_ONLY = [
  "--service",
  "tcp:203.0.113.10:80=192.0.2.10:8080",
  "--service",
  "udp:203.0.113.10:53=192.0.2.10:5353",
];

const RECORDINGS: readonly Recording[] = [
  {
    name: "dpvs-opp",
    args: ["--profile", "dpvs", "--uoa", "opp"],
    tcp: ["v4", "v6", "nat64"],
    udp: ["v4", "v6", "nat64"],
  },
  {
    name: "dpvs-ipo",
    args: ["--profile", "dpvs", "--uoa", "ipo", ...V4_ONLY],
    tcp: ["v4"],
    udp: ["v4"],
  },
  { name: "lvs", args: ["--profile", "lvs"], tcp: ["v4", "v6"], udp: [] },
  { name: "tencent", args: ["--profile", "tencent"], tcp: ["v4", "v6", "nat64"], udp: [] },
  { name: "ksyun-ttm", args: ["--profile", "ksyun-ttm"], tcp: ["v4", "v6"], udp: [] },
  { name: "noa", args: ["--profile", "noa"], tcp: ["v4", "v6"], udp: [] },
  { name: "bytedance", args: ["--profile", "bytedance"], tcp: ["v4", "v6"], udp: [] },
  { name: "aliyun-cdn", args: ["--profile", "aliyun-cdn"], tcp: ["v4", "v6"], udp: [] },
  { name: "ucloud", args: ["--profile", "ucloud", ...V4_ONLY.slice(0, 2)], tcp: ["v4"], udp: [] },
];

const CLIENT = { v4: "198.51.100.61", v6: "2001:db8:c::61", nat64: "2001:db8:c::61" } as const;
const VIP = { v4: "203.0.113.10", v6: "[2001:db8:f::10]", nat64: "[2001:db8:f::64]" } as const;

const manifest: Record<string, { family: 4 | 6; address: string; port: number }> = {};
let port = 42_001;

async function record(r: Recording): Promise<void> {
  console.error(`[record] ${r.name}`);
  const up = new Bg([process.execPath, CLI, "up", "--json", "--decoder", "none", ...r.args]);
  await up.until(() => up.out.includes("\n"), 60_000, "ready line");
  const id = (JSON.parse(up.out.split("\n")[0]!) as { id: string }).id;
  const clientNs = `toasim-${id}-c`;
  const ready = join(DIR, `${r.name}.ready`);
  const server = new Bg([
    process.execPath,
    CLI,
    "exec",
    "rs",
    "--id",
    id,
    "--",
    process.execPath,
    join(ROOT, "examples/node/reader-server.mjs"),
    ...READER_ENDPOINTS,
    "--ready",
    ready,
  ]);
  const cap = new Bg([
    process.execPath,
    CLI,
    "capture",
    "--id",
    id,
    "--side",
    "server",
    "--out",
    join(DIR, `${r.name}.pcap`),
  ]);
  try {
    await server.until(() => existsSync(ready), 60_000, "reader ready");
    await cap.until(() => cap.err.includes("capturing"), 30_000, "capture start");
    for (const [proto, families] of [
      ["tcp", r.tcp],
      ["udp", r.udp],
    ] as const) {
      for (const f of families) {
        const tag = `${r.name}/${proto}/${f}`;
        const p = port++;
        const v6 = f !== "v4";
        const bind = v6 ? `[${CLIENT[f]}]:${p}` : `${CLIENT[f]}:${p}`;
        const kind = `${proto.toUpperCase()}${v6 ? "6" : "4"}`;
        const vport = proto === "tcp" ? 80 : 53;
        const res = await run(
          [
            "ip",
            "netns",
            "exec",
            clientNs,
            "socat",
            "-t",
            "3",
            "-T",
            "8",
            "-",
            `${kind}:${VIP[f]}:${vport},bind=${bind}`,
          ],
          30_000,
          `parity ${tag}\n`,
        );
        // Without a decoder the server kernel drops UOA opp datagrams: only
        // TCP must have been answered; the capture has what was sent.
        if (proto === "tcp" && !res.stdout.includes("{"))
          throw new Error(`no answer for ${tag}: ${res.stderr}`);
        manifest[tag] = { family: v6 ? 6 : 4, address: CLIENT[f], port: p };
      }
    }
    await sleep(1500);
  } finally {
    await cap.stop("SIGINT");
    await server.stop();
    await up.stop("SIGTERM");
    await run([process.execPath, CLI, "down", "--id", id], 30_000);
    rmSync(ready, { force: true });
  }
}

async function main(): Promise<void> {
  mkdirSync(DIR, { recursive: true });
  for (const r of RECORDINGS) await record(r);
  writeFileSync(join(DIR, "manifest.json"), `${JSON.stringify(manifest, null, 1)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
