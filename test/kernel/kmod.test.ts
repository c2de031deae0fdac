import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { commandMissing, tierUnavailable } from "../helpers/tier.js";

/**
 * The kernel tier: for each Debian kernel, toasim's module is built against
 * that kernel's headers (`toasim vm --build --build-only`), then the kernel
 * boots under QEMU (`toasim vm`) and test/kernel/guest/kmod-scenario.ts runs
 * inside it: the real gateway (toasim up), the real module, the Node, C and
 * Python reader servers and socat clients. The scenario records; the tests
 * here judge what it recorded.
 *
 * TOASIM_KERNELS=6.1,6.12 narrows the list (all four by default).
 */

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = join(ROOT, "bin/toasim.js");
const KERNELS = (process.env["TOASIM_KERNELS"] ?? "5.10,6.1,6.12,sid")
  .split(",")
  .map((k) => k.trim())
  .filter((k) => k !== "");

function missing(): string | null {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root (the guest scenario runs toasim up)";
  for (const [cmd, args] of [
    ["qemu-system-x86_64", ["--version"]],
    ["apt-get", ["--version"]],
    ["dpkg-deb", ["--version"]],
    ["make", ["--version"]],
    ["gcc", ["--version"]],
    ["socat", ["-V"]],
    ["insmod", ["--version"]],
    ["xz", ["--version"]],
  ] as const) {
    const m = commandMissing(cmd, [...args]);
    if (m !== null) return m;
  }
  if (!existsSync("/bin/busybox")) return "/bin/busybox missing (busybox-static)";
  if (!existsSync(join(ROOT, "dist/test/kernel/guest/kmod-scenario.js")))
    return "not built (npm run build)";
  return null;
}

const skip = tierUnavailable("kernel", missing());

type Json = Record<string, unknown>;
interface Addr {
  family: number;
  address: string;
  port: number;
}
interface Case {
  phase: string;
  profile: string;
  reader: string;
  proto: "tcp" | "udp";
  family: "v4" | "v6" | "nat64";
  client: { address: string; port: number };
  report: Json | null;
  error?: string;
}
type Counters = Record<string, number>;
interface Stats {
  toa: Counters;
  uoa: Counters;
}
interface BuildJson {
  kernel: string;
  builds: { source: string; modules: string[]; warnings: string[]; compiler: string }[];
}
interface VmReport {
  kernel: string;
  exitCode: number;
  bootMs: number | null;
  kernelProblems: string[];
}

/**
 * Runs a command without blocking this worker: a VM run takes minutes, and
 * a blocked event loop makes vitest's own worker calls time out.
 */
function runAsync(
  argv: string[],
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    p.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => p.kill("SIGTERM"), timeoutMs);
    p.on("error", (e) => {
      clearTimeout(timer);
      res({ code: -1, stdout, stderr: `${stderr}${e.message}` });
    });
    p.on("close", (code) => {
      clearTimeout(timer);
      res({ code: code ?? -1, stdout, stderr });
    });
  });
}

const toasim = (args: string[], timeoutMs: number) =>
  runAsync([process.execPath, CLI, ...args], timeoutMs);

const delta = (a: Counters, b: Counters, k: string): number => (b[k] ?? 0) - (a[k] ?? 0);

/** The kernel log lines that mean something went wrong in the kernel. */
const KERNEL_TROUBLE =
  /\b(Oops|BUG:|WARNING:|kernel BUG|general protection|Call Trace|RIP:|refcount_t|UBSAN|KASAN|list_(add|del) corruption|rcu_sched self-detected stall|blocked for more than|calls missed)\b/;

const TAINT_OOT = 4096; // O: out-of-tree module loaded
const TAINT_UNSIGNED = 8192; // E: unsigned module loaded

// Kept after the run (out/ is not tracked): the results, the guest's
// kernel log and console of each kernel, for whoever reads a failure.
const work = join(ROOT, "out", "kernel");

describe.skipIf(skip)("the toasim module on Debian kernels under QEMU", () => {
  beforeAll(async () => {
    // The C reader runs in the guest from the shared root.
    const r = await runAsync(["make", "-C", join(ROOT, "examples/c")], 120_000);
    if (r.code !== 0) throw new Error(`make -C examples/c failed:\n${r.stderr}`);
  });

  it("follows the kernel coding style (checkpatch --strict: no errors, warnings or checks)", async () => {
    const r = await runAsync(["make", "-C", join(ROOT, "kmod"), "style"], 600_000);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/(ERROR|WARNING|CHECK):/);
    expect(r.code).toBe(0);
  }, 600_000);

  for (const series of KERNELS) {
    describe(`kernel ${series}`, () => {
      const dir = join(work, series);
      let build: BuildJson;
      let vm: VmReport;
      let res: Json;
      let cases: Case[] = [];

      beforeAll(async () => {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        const b = await toasim(
          [
            "vm",
            "--kernel",
            series,
            "--build",
            "kmod",
            "--build",
            "kmod/tests/rival",
            "--build-only",
            "--json",
          ],
          900_000,
        );
        if (b.code !== 0)
          throw new Error(`toasim vm --build-only (${series}) failed:\n${b.stderr}`);
        build = JSON.parse(b.stdout) as BuildJson;
        const [mod, rival] = build.builds.map((x) => x.modules[0]);
        const run = await toasim(
          [
            "vm",
            "--kernel",
            series,
            "--share",
            dir,
            "--report",
            join(dir, "vm.json"),
            "--dmesg",
            join(dir, "dmesg.txt"),
            "--console-log",
            join(dir, "console.txt"),
            "--timeout",
            "1500",
            "--",
            "node",
            "dist/test/kernel/guest/kmod-scenario.js",
            "--module",
            mod!,
            "--rival",
            rival!,
            "--out",
            join(dir, "results.json"),
          ],
          1_600_000,
        );
        if (!existsSync(join(dir, "results.json")))
          throw new Error(
            `the guest scenario wrote no results (${series}):\n${run.stderr.slice(-4000)}`,
          );
        vm = JSON.parse(readFileSync(join(dir, "vm.json"), "utf8")) as VmReport;
        res = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as Json;
        cases = (res["cases"] as Case[]) ?? [];
        if (res["done"] !== true)
          throw new Error(`the guest scenario did not finish (${series}): ${String(res["error"])}`);
      }, 1_800_000);

      const of = (phase: string): Case[] => cases.filter((c) => c.phase === phase);
      const field = (c: Case, k: string): Json => (c.report?.[k] ?? {}) as Json;
      const client = (c: Case): Addr => ({
        family: c.family === "v4" ? 4 : 6,
        address: c.client.address,
        port: c.client.port,
      });
      const isLip = (a: Json): boolean =>
        a["family"] === 4 && /^192\.0\.2\.(1[0-2]\d|13[01])$/.test(String(a["address"]));

      it("builds both modules against the kernel's headers without a warning", () => {
        expect(build.builds).toHaveLength(2);
        for (const b of build.builds) {
          expect(b.warnings).toEqual([]);
          expect(b.modules).toHaveLength(1);
        }
        expect(build.kernel).toBe(vm.kernel);
      });

      it("boots to the command in under 15 s and ends with its exit code", () => {
        expect(vm.exitCode).toBe(0);
        expect(vm.bootMs).not.toBeNull();
        expect(vm.bootMs!).toBeLessThan(15_000);
        expect(String(res["kernel"])).toBe(vm.kernel);
      });

      it("TCP: every reader gets the client for v4, v6 and NAT64 (getpeername, 2049, 4096, 1345)", () => {
        const tcp = of("readers-opp").filter((c) => c.proto === "tcp");
        expect(tcp).toHaveLength(9);
        for (const c of tcp) {
          expect(c.error, `${c.reader} ${c.family}`).toBeUndefined();
          const want = client(c);
          const label = `${c.reader} tcp ${c.family}`;
          expect(field(c, "toaCtl"), label).toEqual({ ok: true, ...want, toaSet: true });
          expect(field(c, "ttm"), label).toEqual({ ok: true, ...want });
          if (c.family === "nat64") {
            // v6_on_v4=keep (the default, DPVS's behaviour): getpeername
            // shows the gateway and 4096 the IPv6 client.
            expect(isLip(field(c, "peer")), label).toBe(true);
            expect(field(c, "toaLookup"), label).toEqual({ ok: true, ...want });
          } else {
            expect(field(c, "peer"), label).toEqual(want);
            expect(field(c, "toaLookup"), label).toEqual({ ok: false, errno: 22, error: "EINVAL" });
          }
        }
        expect(new Set(tcp.map((c) => c.reader))).toEqual(new Set(["node", "c", "python"]));
      });

      it("UDP: every reader gets the client from opp (v4, v6, NAT64) and ipo (v4), both 2048 forms", () => {
        const udp = [...of("readers-opp").filter((c) => c.proto === "udp"), ...of("readers-ipo")];
        expect(udp).toHaveLength(12);
        for (const c of udp) {
          const label = `${c.reader} ${c.phase} udp ${c.family}`;
          expect(c.error, label).toBeUndefined();
          const want = client(c);
          expect(field(c, "uoaNoa"), label).toEqual({ ok: true, ...want });
          expect(field(c, "uoaDpvs"), label).toEqual({ ok: true, ...want });
          // The datagram itself came from the gateway.
          expect(field(c, "peer")["address"], label).not.toBe(want.address);
        }
      });

      it("v6_on_v4=inet6: getpeername of a NAT64 client on an IPv4 socket is the IPv6 client", () => {
        const r = res["inet6"] as Json;
        expect((r["load"] as Json)["code"]).toBe(0);
        const nat64 = of("inet6").filter((c) => c.family === "nat64");
        expect(nat64).toHaveLength(3);
        for (const c of [...of("inet6")]) {
          expect(field(c, "peer"), `${c.reader} ${c.family}`).toEqual(client(c));
        }
      });

      it("reads every TCP dialect the gateway emits", () => {
        const d = of("dialects");
        expect(new Set(d.map((c) => c.profile))).toEqual(
          new Set([
            "lvs",
            "tencent",
            "ksyun-ttm",
            "noa",
            "bytedance",
            "bytedance-vaddr",
            "aliyun-cdn",
            "ucloud",
          ]),
        );
        for (const c of d) {
          const label = `${c.profile} ${c.family}`;
          expect(c.error, label).toBeUndefined();
          const want = client(c);
          const ctl = field(c, "toaCtl");
          expect(ctl["toaSet"], label).toBe(true);
          expect(ctl["address"], label).toBe(want.address);
          expect(field(c, "peer")["address"], label).toBe(want.address);
          // aliyun-cdn carries no port: the socket's own (the gateway's) stays.
          if (c.profile !== "aliyun-cdn") expect(field(c, "peer")["port"], label).toBe(want.port);
          else expect(field(c, "peer")["port"], label).not.toBe(want.port);
        }
      });

      it("toasim demo shows every client (TCP and UDP, v4, v6, NAT64) through the module", () => {
        const d = res["demo"] as { code: number; stderr: string; out: Json | null };
        expect(d.out, d.stderr).not.toBeNull();
        const out = d.out!;
        expect(out["decoder"]).toBe("toasim.ko");
        const rows = out["results"] as {
          proto: string;
          family: string;
          pass: boolean;
          seen: Json;
        }[];
        expect(rows).toHaveLength(12);
        for (const r of rows) {
          expect(r.pass, `${r.proto} ${r.family} ${JSON.stringify(r.seen)}`).toBe(true);
          expect(r.seen["via"]).toBe(r.proto === "tcp" ? "getsockopt(2049)" : "getsockopt(2048)");
        }
        expect(out["ok"]).toBe(true);
        expect(d.code).toBe(0);
      });

      it("toa_stats and uoa_stats count the connections made, and IPv6 clients are freed", () => {
        const r = res["readers-opp"] as { tcpConnections: number; before: Stats; after: Stats };
        expect(r.tcpConnections).toBe(9);
        expect(delta(r.before.toa, r.after.toa, "syn_recv_sock_toa")).toBe(9);
        expect(delta(r.before.toa, r.after.toa, "syn_recv_sock_no_toa")).toBe(0);
        // v6 and NAT64 for each of the three readers.
        expect(delta(r.before.toa, r.after.toa, "ip6_address_alloc")).toBe(6);
        expect(delta(r.before.toa, r.after.toa, "ip6_address_free")).toBe(6);
        // getpeername: v4 and v6 rewritten, NAT64 left as the gateway (keep).
        expect(delta(r.before.toa, r.after.toa, "getname_toa_ok")).toBeGreaterThanOrEqual(6);
        expect(delta(r.before.toa, r.after.toa, "getname_toa_mismatch")).toBeGreaterThanOrEqual(3);
        expect(r.after.toa["sock_entries"]).toBe(0);
        // UDP: 9 datagrams with a UOA, each looked up with both forms by its reader.
        expect(delta(r.before.uoa, r.after.uoa, "got")).toBe(9);
        expect(delta(r.before.uoa, r.after.uoa, "saved")).toBe(9);
        expect(delta(r.before.uoa, r.after.uoa, "success")).toBe(18);
        expect(delta(r.before.uoa, r.after.uoa, "invalid")).toBe(0);
      });

      it("UOA flow entries expire: the same flow finds nothing after uoa_timeout", () => {
        const e = res["expiry"] as {
          first: Case;
          third: Case;
          fourth: Case;
          mid: Stats;
          after: Stats;
        };
        expect(field(e.first, "uoaNoa")).toEqual({ ok: true, ...client(e.first) });
        expect(field(e.third, "uoaNoa")).toEqual({ ok: true, ...client(e.third) });
        expect(field(e.fourth, "uoaNoa")).toEqual({ ok: false, errno: 2, error: "ENOENT" });
        expect(field(e.fourth, "uoaDpvs")).toEqual({ ok: false, errno: 2, error: "ENOENT" });
        expect(e.after.uoa["expired"]!).toBeGreaterThan(e.mid.uoa["expired"]!);
        expect(e.after.uoa["flow_entries"]).toBe(0);
      });

      it("2,000 connections with broken and untrusted carriers are each counted, and nothing leaks", () => {
        const s = res["storm"] as {
          code: number;
          stderr: string;
          summary: { tcp: Json; udp: Json; expect: Counters } | null;
          before: Stats;
          after: Stats;
          settled: Stats;
        };
        expect(s.code, s.stderr).toBe(0);
        const sum = s.summary!;
        // Every handshake completes, but where the kernel drops the ACK itself
        // (7.x: an option running past the header); the server accepted each.
        const refused = Object.values(sum.tcp["refusedByKernel"] as Counters).reduce(
          (a, b) => a + b,
          0,
        );
        expect(Number(sum.tcp["established"]) + refused).toBe(2000);
        expect(Number(sum.tcp["established"])).toBeGreaterThan(1700);
        expect(sum.tcp["accepted"]).toBe(sum.tcp["established"]);
        const x = sum.expect;
        const t = (k: string): number => delta(s.before.toa, s.after.toa, k);
        const u = (k: string): number => delta(s.before.uoa, s.after.uoa, k);
        expect(x["toa_malformed"]!).toBeGreaterThan(1000);
        expect(t("toa_malformed")).toBe(x["toa_malformed"]);
        expect(t("toa_untrusted")).toBe(x["toa_untrusted"]);
        expect(t("syn_recv_sock_toa")).toBe(x["syn_recv_sock_toa"]);
        expect(t("syn_recv_sock_no_toa")).toBe(x["syn_recv_sock_no_toa"]);
        expect(t("ip6_address_alloc")).toBe(x["ip6_address_alloc"]);
        expect(u("invalid")).toBe(x["uoa_invalid"]);
        expect(u("untrusted")).toBe(x["uoa_untrusted"]);
        expect(u("saved")).toBe(x["uoa_saved"]);
        expect(u("none")).toBe(x["uoa_none"]);
        // Once the sockets are gone and the flows expired, the tables are empty.
        expect(s.settled.toa["sock_entries"]).toBe(0);
        expect(s.settled.toa["syn_entries"]).toBe(0);
        expect(s.settled.uoa["flow_entries"]).toBe(0);
        expect(s.settled.toa["ip6_address_free"]).toBe(s.settled.toa["ip6_address_alloc"]);
        expect(s.settled.uoa["expired"]).toBe(s.settled.uoa["saved"]);
      });

      it("unloads safely with connections open and busy, and loads again", () => {
        const r = res["unload"] as Json & {
          echoedBefore: number[];
          echoedAfter: number[];
          before: Stats;
        };
        expect(r["open"]).toBe(10);
        expect(r.before.toa["sock_entries"]).toBeGreaterThanOrEqual(10);
        expect((r["unload"] as Json)["code"]).toBe(0);
        expect(r["procGone"]).toBe(true);
        // The open connections go on exchanging data without the module.
        expect(r.echoedBefore).toHaveLength(10);
        r.echoedAfter.forEach((n, i) => {
          expect(n, `connection ${i}`).toBeGreaterThan(r.echoedBefore[i]!);
        });
        expect(Number(r["churnAfter"])).toBeGreaterThan(Number(r["churnBefore"]));
        expect(Number(r["churnNoDecoder"])).toBeGreaterThanOrEqual(1);
        expect((r["reload"] as Json)["code"]).toBe(0);
        expect(r["procAfterReload"]).toBe(true);
        expect(Number(r["churnReports"])).toBe(30);
        expect(((r["churnLast"] as Json)["toaCtl"] as Json)["toaSet"]).toBe(true);
      });

      it("refuses to load beside a module that owns the same getsockopt range, saying so", () => {
        const r = res["rival"] as Json;
        expect((r["rivalLoad"] as Json)["code"]).toBe(0);
        expect((r["toasimLoad"] as Json)["code"]).not.toBe(0);
        expect(String((r["toasimLoad"] as Json)["err"])).toMatch(/busy/i);
        expect((r["dmesg"] as string[]).join("\n")).toMatch(
          /toasim: getsockopt options 2048-2049 are already registered by another module/,
        );
        expect(r["toasimListed"]).toBe(false);
        expect(r["procLeft"]).toBe(false);
        expect((r["rivalUnload"] as Json)["code"]).toBe(0);
      });

      it("refuses bad parameters, naming each in the kernel log", () => {
        const r = res["badParams"] as { cases: (Json & { dmesg: string[] })[]; procLeft: boolean };
        expect(r.cases).toHaveLength(4);
        for (const c of r.cases) {
          const name = String(c["param"]).split("=")[0]!;
          expect(c["code"], name).not.toBe(0);
          expect(c.dmesg.join("\n"), name).toContain(`toasim: ${name}`);
        }
        expect(r.procLeft).toBe(false);
      });

      it("leaves no oops, WARN or BUG in the kernel log; the only taints are out-of-tree and unsigned", () => {
        expect(vm.kernelProblems).toEqual([]);
        const log = res["dmesg"] as string[];
        expect(log.filter((l) => KERNEL_TROUBLE.test(l))).toEqual([]);
        expect(log.some((l) => l.includes("toasim: loaded"))).toBe(true);
        const taint = Number(res["tainted"]);
        expect(taint & ~(TAINT_OOT | TAINT_UNSIGNED)).toBe(0);
        expect((res["finalUnload"] as Json)["code"]).toBe(0);
      });
    });
  }
});
