import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cgroup2Root } from "../../src/cgroup2.js";
import { ebpfUnavailable } from "../../src/decoder/availability.js";
import { removeCgroup } from "../../src/runtime/rs-decoder.js";
import { type Case, decoderChecks, type Json } from "../helpers/decoder-checks.js";
import { describeTier } from "../helpers/tier.js";
import {
  Background,
  CLI,
  e2eMissing,
  netnsList,
  ROOT,
  run,
  sh,
  sleep,
  startCliInstance,
  startGateway,
  stopCliInstance,
} from "./helpers.js";

/**
 * The eBPF decoder on this machine's own kernel: the matrix the kernel
 * module passes in the VM (test/decoder-run/scenario.ts, judged by the same
 * checks), then what only the eBPF side has: clean-up after a kill
 * (`toasim up` SIGKILLed, `toasim down`), `toasim decoder load|unload` for
 * servers outside toasim (in an instance started with the API), and the
 * errors when BPF cannot run.
 */

function missing(): string | null {
  return (
    e2eMissing([
      ["socat", ["-V"]],
      ["python3", ["--version"]],
      ["make", ["--version"]],
      ["gcc", ["--version"]],
      ["unshare", ["--version"]],
      ["setpriv", ["--version"]],
    ]) ?? ebpfUnavailable()
  );
}

const missingHere = missing();
const OUT = join(ROOT, "out", "ebpf");

function toasimLinks(): string[] {
  // Program names as the kernel shows them in bpftool's link and prog lists.
  return sh(["bpftool", "prog", "show"])
    .split("\n")
    .filter((l) => /name toasim_/.test(l));
}

/** The kernel frees a detached program after an RCU grace period: wait for it, briefly. */
async function noPrograms(ms = 5000): Promise<string[]> {
  const end = Date.now() + ms;
  let left = toasimLinks();
  while (left.length > 0 && Date.now() < end) {
    await sleep(100);
    left = toasimLinks();
  }
  return left;
}

function rsCgroups(): string[] {
  const root = cgroup2Root();
  return root === null ? [] : readdirSync(root).filter((n) => /^toasim-.+-(rs|storm)$/.test(n));
}

describeTier("e2e (eBPF decoder)", missingHere, "the eBPF decoder on this machine's kernel", () => {
  let res: Json = {};
  let cases: Case[] = [];

  beforeAll(async () => {
    const c = await run(["make", "-C", join(ROOT, "examples/c")], 120_000);
    if (c.code !== 0) throw new Error(`make -C examples/c: ${c.stderr}`);
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    const r = await run(
      [
        process.execPath,
        join(ROOT, "build/test/decoder-run/scenario.js"),
        "--decoder",
        "ebpf",
        "--out",
        join(OUT, "results.json"),
      ],
      1_200_000,
    );
    if (!existsSync(join(OUT, "results.json")))
      throw new Error(`the scenario wrote no results:\n${r.stderr.slice(-4000)}`);
    res = JSON.parse(readFileSync(join(OUT, "results.json"), "utf8")) as Json;
    cases = (res["cases"] as Case[]) ?? [];
    if (res["done"] !== true)
      throw new Error(
        `the scenario did not finish: ${String(res["error"])}\n${r.stderr.slice(-3000)}`,
      );
  }, 1_300_000);

  decoderChecks(() => ({ res, cases }), "ebpf");

  it("leaves no program, cgroup or namespace behind once the instances stop", async () => {
    expect(await noPrograms()).toEqual([]);
    expect(rsCgroups()).toEqual([]);
    expect(netnsList().filter((n) => n.startsWith("toasim-"))).toEqual([]);
  });

  it("a SIGKILLed instance's programs go with it; toasim down removes its cgroup", async () => {
    const inst = await startCliInstance(["--profile", "dpvs", "--decoder", "ebpf"]);
    expect(toasimLinks().length).toBe(5);
    expect(rsCgroups()).toContain(`toasim-${inst.id}-rs`);
    await inst.up.stop("SIGKILL");
    // The links were this process's file descriptors; tun-r (with its tc
    // filter) went with the process's TUN fd.
    expect(await noPrograms()).toEqual([]);
    const down = await stopCliInstance(inst);
    expect(down.code).toBe(0);
    expect(rsCgroups()).toEqual([]);
  });

  it("toasim decoder load|stats|unload serves a server run outside toasim, then leaves nothing", async () => {
    // An instance without a decoder of its own (stopped at the end of the
    // test, after the finally below); the server runs in a cgroup made
    // here, outside toasim, as a user's would be.
    await using gw = await startGateway({ profile: "dpvs" });
    const cg = join(cgroup2Root()!, "toasim-e2e-web");
    mkdirSync(cg, { recursive: true });
    let server: Background | null = null;
    try {
      const load = await run(
        [
          process.execPath,
          CLI,
          "decoder",
          "load",
          "--cgroup",
          cg,
          "--dev",
          "tun-r",
          "--netns",
          gw.serverNamespace ?? "",
          "--name",
          "e2e",
        ],
        60_000,
      );
      expect(load.code, load.stderr).toBe(0);
      const again = await run(
        [process.execPath, CLI, "decoder", "load", "--cgroup", cg, "--name", "e2e"],
        60_000,
      );
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/decoder named e2e is loaded already/);
      server = new Background([
        "sh",
        "-c",
        'echo $$ > "$0/cgroup.procs" && exec "$@"',
        cg,
        "ip",
        "netns",
        "exec",
        gw.serverNamespace ?? "",
        "python3",
        join(ROOT, "examples/python/reader_server.py"),
        "--tcp",
        "192.0.2.10:8080",
        "--udp",
        "192.0.2.10:5353",
        "--ready",
        join(OUT, "web.ready"),
      ]);
      // The reader says nothing until it has a client: poll for its ready file.
      for (let i = 0; i < 300 && !existsSync(join(OUT, "web.ready")); i++) await sleep(100);
      expect(existsSync(join(OUT, "web.ready")), server.err).toBe(true);
      const ask = async (target: string): Promise<Json> => {
        const r = await gw.exec("client", ["sh", "-c", `echo hi | socat -t 3 - ${target}`], {
          timeoutMs: 20_000,
        });
        return JSON.parse(r.stdout.split("\n")[0] ?? "{}") as Json;
      };
      const tcp = await ask("TCP4:203.0.113.10:80,bind=198.51.100.44:41001");
      expect(tcp["peer"]).toEqual({ family: 4, address: "198.51.100.44", port: 41001 });
      const udp = await ask("UDP4:203.0.113.10:53,bind=198.51.100.44:41002");
      expect(udp["uoaNoa"]).toEqual({ ok: true, family: 4, address: "198.51.100.44", port: 41002 });
      const st = await run(
        [process.execPath, CLI, "decoder", "stats", "--name", "e2e", "--json"],
        30_000,
      );
      const rows = JSON.parse(st.stdout) as { toa: Json; uoa: Json };
      expect(rows.toa["syn_recv_sock_toa"]).toBe(1);
      expect(rows.uoa["saved"]).toBe(1);
      const un = await run([process.execPath, CLI, "decoder", "unload", "--name", "e2e"], 30_000);
      expect(un.code, un.stderr).toBe(0);
      expect(await noPrograms()).toEqual([]);
      expect(existsSync("/sys/fs/bpf/toasim")).toBe(false);
      // Without the decoder the same server sees the gateway again.
      const after = await ask("TCP4:203.0.113.10:80,bind=198.51.100.44:41003");
      expect((after["peer"] as Json)["address"]).toMatch(/^192\.0\.2\.1\d\d$/);
      expect(after["toaCtl"]).toEqual({ ok: false, errno: 92, error: "ENOPROTOOPT" });
      const twice = await run(
        [process.execPath, CLI, "decoder", "unload", "--name", "e2e"],
        30_000,
      );
      expect(twice.code).toBe(1);
      expect(twice.stderr).toMatch(/no decoder named e2e is loaded/);
    } finally {
      await server?.stop("SIGKILL");
      await run([process.execPath, CLI, "decoder", "unload", "--name", "e2e"], 30_000);
      removeCgroup(cg);
    }
  });

  describe("says what is missing when BPF cannot run, and changes nothing", () => {
    const load = ["decoder", "load", "--cgroup", "/sys/fs/cgroup", "--name", "never"];

    it("not root", async () => {
      const r = await run(
        [
          "setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          process.execPath,
          CLI,
          ...load,
        ],
        30_000,
      );
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toMatch(
        /^toasim decoder: not root: loading BPF programs needs CAP_BPF/,
      );
    });

    it("no kernel BTF", async () => {
      const r = await run(
        [...withMounts("mount -t tmpfs none /sys/kernel/btf"), process.execPath, CLI, ...load],
        30_000,
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the kernel has no BTF \(\/sys\/kernel\/btf\/vmlinux is missing/);
    });

    it("no cgroup v2", async () => {
      const root = cgroup2Root()!;
      const r = await run(
        [...withMounts(`umount -l ${root}`), process.execPath, CLI, ...load],
        30_000,
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/no cgroup v2 is mounted/);
    });

    it("clang missing", async () => {
      const r = await run(["env", "PATH=/nonexistent", process.execPath, CLI, ...load], 30_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/clang is not installed/);
    });

    it("toasim up --decoder auto goes on without, and says why; --decoder ebpf refuses", async () => {
      const hide = withMounts("mount -t tmpfs none /sys/kernel/btf");
      const auto = new Background([...hide, process.execPath, CLI, "up", "--json"]);
      try {
        await auto.waitFor(() => auto.lines().length > 0, 30_000, "ready line");
        expect((JSON.parse(auto.lines()[0]!) as Json)["decoder"]).toBe("none");
        expect(auto.err).toMatch(/toasim up: no eBPF decoder: the kernel has no BTF/);
      } finally {
        await auto.stop();
      }
      const strict = await run([...hide, process.execPath, CLI, "up", "--decoder", "ebpf"], 30_000);
      expect(strict.code).toBe(1);
      expect(strict.stderr).toMatch(/--decoder: ebpf: the kernel has no BTF/);
      await run([process.execPath, CLI, "down"], 30_000);
      expect(await noPrograms()).toEqual([]);
      expect(existsSync("/sys/fs/bpf/toasim")).toBe(false);
    });
  });
});

/** argv prefix: run the rest in a private mount namespace after `change`, which hides a kernel facility from it alone. */
function withMounts(change: string): string[] {
  return ["unshare", "-m", "sh", "-c", `${change} && exec "$@"`, "sh"];
}
