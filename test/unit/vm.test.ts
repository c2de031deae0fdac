import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { cpioArchive } from "../../src/vm/cpio.js";
import { VmError } from "../../src/vm/errors.js";
import { initScript, JOB_TAG, jobScript, START_MARK, shellQuote } from "../../src/vm/guest-init.js";
import { kernelSeries } from "../../src/vm/kernels.js";
import { ModuleTree, moduleName, parseModInfo } from "../../src/vm/kmod-files.js";
import { runVm, SYSTEM_MODULES } from "../../src/vm/qemu-run.js";
import { commandMissing, describeTier } from "../helpers/tier.js";
import { runCli } from "./helpers/cli.js";

// The parts of `toasim vm` that need no QEMU: the initramfs archive (read
// back by busybox's cpio, not by us), the shell quoting of the guest
// scripts (run by the machine's sh), the .modinfo reader and the CLI's
// flag errors. The kernel tier boots the real thing.

const dir = mkdtempSync(join(tmpdir(), "toasim-vm-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BUSYBOX_TIER = "unit (initramfs check needs busybox)";
const busyboxMissing = commandMissing("busybox", ["true"]);

describeTier(BUSYBOX_TIER, busyboxMissing, "initramfs (newc cpio)", () => {
  it("is read back by busybox cpio with every file, mode and link intact", () => {
    const data = new Uint8Array(1001).map((_, i) => (i * 7) & 0xff);
    const archive = cpioArchive([
      { type: "dir", path: "bin" },
      { type: "dir", path: "mods/sys" },
      { type: "file", path: "init", data: Buffer.from("#!/bin/sh\necho hi\n"), mode: 0o755 },
      { type: "file", path: "mods/sys/00-a.ko", data },
      { type: "file", path: "empty", data: new Uint8Array(0) },
      { type: "symlink", path: "bin/sh", target: "busybox" },
    ]);
    const cpio = join(dir, "a.cpio");
    writeFileSync(cpio, gunzipSync(archive));
    const out = join(dir, "x");
    mkdirSync(out);
    execFileSync("sh", ["-c", `cd ${out} && busybox cpio -id < ${cpio}`], { stdio: "pipe" });
    expect(readFileSync(join(out, "init"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(Buffer.from(readFileSync(join(out, "mods/sys/00-a.ko"))).equals(Buffer.from(data))).toBe(
      true,
    );
    expect(readFileSync(join(out, "empty")).length).toBe(0);
    const mode = execFileSync("stat", ["-c", "%a %F", join(out, "init")], { encoding: "utf8" });
    expect(mode.trim()).toBe("755 regular file");
    const link = execFileSync("readlink", [join(out, "bin/sh")], { encoding: "utf8" });
    expect(link.trim()).toBe("busybox");
    const list = execFileSync("sh", ["-c", `busybox cpio -t < ${cpio}`], { encoding: "utf8" });
    expect(list.split("\n").filter((l) => l !== "")).toEqual([
      "bin",
      "mods/sys",
      "init",
      "mods/sys/00-a.ko",
      "empty",
      "bin/sh",
    ]);
  });
});

describe("guest scripts", () => {
  it.each([
    "plain",
    "it's",
    "a b  c",
    "$HOME `id` $(id)",
    '"double" \\ back',
    "new\nline",
    "",
    "*?[glob]",
    "-dash",
  ])("shellQuote(%j) is one word the shell gives back unchanged", (s) => {
    const r = spawnSync("sh", ["-c", `printf %s ${shellQuote(s)}`], { encoding: "utf8" });
    expect(r.stdout).toBe(s);
  });

  it("the job script runs the argv exactly, in the folder, with the environment", () => {
    const job = {
      systemModules: [],
      userModules: [],
      shares: [],
      cwd: dir,
      env: { ODD: "a'b $c" },
      argv: ["sh", "-c", 'printf "%s|%s|%s" "$(pwd)" "$ODD" "$0"', "zero word"],
    };
    const script = join(dir, "job.sh");
    writeFileSync(script, jobScript(job));
    const r = spawnSync("sh", [script], { encoding: "utf8", cwd: "/" });
    expect(r.stdout).toBe(`${dir}|a'b $c|zero word`);
  });

  it("the init script loads the VM's modules, then the user's with their parameters, then runs the job", () => {
    const s = initScript({
      systemModules: [{ file: "sys/00-virtio.ko", name: "virtio", params: [] }],
      userModules: [{ file: "user/0-toasim.ko", name: "toasim", params: ["trusted=any"] }],
      shares: [{ tag: "share0", path: "/tmp/it's here" }],
      cwd: "/",
      env: {},
      argv: ["true"],
    });
    const at = (needle: string): number => {
      const i = s.indexOf(needle);
      expect(i, needle).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(at("insmod /mods/sys/00-virtio.ko")).toBeLessThan(at("mount -t overlay"));
    expect(at("mount -t overlay")).toBeLessThan(at("insmod /mods/user/0-toasim.ko 'trusted=any'"));
    expect(at("'/tmp/it'\\''s here'")).toBeLessThan(at("chroot $R /bin/sh /run/toasim-vm/job.sh"));
    // The last power-off, after the exit code is saved (fail() has its own).
    expect(at("echo $rc >/job/rc")).toBeLessThan(s.lastIndexOf("poweroff -f"));
    // busybox sh must accept it: parse only (-n).
    const f = join(dir, "init.sh");
    writeFileSync(f, s);
    expect(spawnSync("sh", ["-n", f]).status).toBe(0);
  });
});

/** A minimal ELF64 LE file with a section-name table and one .modinfo section. */
function elf(modinfo: string): Uint8Array {
  const names = Buffer.from("\0.shstrtab\0.modinfo\0");
  const info = Buffer.from(modinfo);
  const shoff = 64 + names.length + info.length;
  const b = Buffer.alloc(shoff + 3 * 64);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeBigUInt64LE(BigInt(shoff), 0x28);
  b.writeUInt16LE(64, 0x3a);
  b.writeUInt16LE(3, 0x3c);
  b.writeUInt16LE(1, 0x3e);
  names.copy(b, 64);
  info.copy(b, 64 + names.length);
  const sh = (i: number, name: number, off: number, size: number): void => {
    b.writeUInt32LE(name, shoff + i * 64);
    b.writeBigUInt64LE(BigInt(off), shoff + i * 64 + 24);
    b.writeBigUInt64LE(BigInt(size), shoff + i * 64 + 32);
  };
  sh(1, 1, 64, names.length);
  sh(2, 11, 64 + names.length, info.length);
  return b;
}

describe("kernel modules' .modinfo", () => {
  it("reads name, depends and vermagic; names compare with - and _ alike", () => {
    const m = parseModInfo(
      elf(
        "license=GPL\0depends=virtio,virtio-ring\0name=9pnet_virtio\0vermagic=6.1.0-57-amd64 SMP mod_unload \0",
      ),
      "x.ko",
    );
    expect(m).toEqual({
      name: "9pnet_virtio",
      depends: ["virtio", "virtio_ring"],
      softdepPre: [],
      aliases: [],
      vermagic: "6.1.0-57-amd64 SMP mod_unload ",
    });
    expect(moduleName("nf-conntrack.ko.xz")).toBe("nf_conntrack");
  });

  it("reads softdeps and aliases; resolving loads a softdep's provider first, the generic one", async () => {
    const m = parseModInfo(
      elf("softdep=pre: crc32c post: x\0alias=crypto-crc32c\0alias=crc32c\0name=y\0"),
      "y.ko",
    );
    expect(m.softdepPre).toEqual(["crc32c"]);
    expect(m.aliases).toEqual(["crypto-crc32c", "crc32c"]);
    const d = mkdtempSync(join(tmpdir(), "toasim-mods-"));
    try {
      const put = (path: string, info: string) => {
        mkdirSync(join(d, "kernel", dirname(path)), { recursive: true });
        writeFileSync(join(d, "kernel", path), elf(info));
      };
      put("net/nf_conntrack.ko", "depends=libcrc32c\0name=nf_conntrack\0");
      put("lib/libcrc32c.ko", "depends=\0softdep=pre: crc32c\0name=libcrc32c\0");
      put("arch/crc32c-intel.ko", "alias=crc32c\0name=crc32c_intel\0");
      put("crypto/crc32c_generic.ko", "alias=crc32c\0name=crc32c_generic\0");
      put("crypto/crc32c_other.ko", "alias=other\0name=crc32c_other\0");
      const order = await new ModuleTree(d).resolve(["nf_conntrack"]);
      expect(order.map((o) => o.name)).toEqual(["crc32c_generic", "libcrc32c", "nf_conntrack"]);
      // Built in, the provider needs nothing loaded; an unknown softdep is skipped.
      writeFileSync(join(d, "modules.builtin"), "kernel/crypto/crc32c_generic.ko\n");
      put("lib/libcrc32c.ko", "softdep=pre: crc32c nosuch\0name=libcrc32c\0");
      const again = await new ModuleTree(d).resolve(["nf_conntrack"]);
      expect(again.map((o) => o.name)).toEqual(["libcrc32c", "nf_conntrack"]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it.each([
    [
      "not ELF",
      Buffer.from("hello, this is not an ELF file at all, just text...................."),
    ],
    [
      "32-bit",
      (() => {
        const b = Buffer.from(elf("name=x\0"));
        b[4] = 1;
        return b;
      })(),
    ],
    ["no .modinfo", elf("").subarray(0, 40)],
    ["section table past the end", elf("name=x\0").subarray(0, 100)],
  ])("refuses %s with a VmError", (_what, bytes) => {
    expect(() => parseModInfo(bytes, "bad.ko")).toThrow(VmError);
  });
});

const run = runCli;

describe("toasim vm flags", () => {
  it("knows the four kernel series", () => {
    expect(["5.10", "6.1", "6.12", "sid"].map(kernelSeries)).toEqual([
      "5.10",
      "6.1",
      "6.12",
      "sid",
    ]);
    expect(() => kernelSeries("4.19")).toThrow(/choose one of 5\.10, 6\.1, 6\.12, sid/);
  });

  it.each([
    [["vm", "--", "true"], "--kernel"],
    [["vm", "--kernel", "4.19", "--", "true"], "--kernel"],
    [["vm", "--kernel", "6.1"], "<cmd>"],
    [["vm", "--kernel", "6.1", "--build-only"], "--build-only"],
    [["vm", "--kernel", "6.1", "--build", "kmod", "--build-only", "--", "true"], "--build-only"],
    [["vm", "--kernel", "6.1", "--env", "1BAD=x", "--", "true"], "--env"],
    [["vm", "--kernel", "6.1", "--env", "NOEQUALS", "--", "true"], "--env"],
    [["vm", "--kernel", "6.1", "--cpus", "0", "--", "true"], "--cpus"],
    [["vm", "--kernel", "6.1", "--memory", "lots", "--", "true"], "--memory"],
    [["vm", "--kernel", "6.1", "--module", "x.ko bad-param!", "--", "true"], "--module"],
    [["vm", "--kernel", "6.1", "--kernel-module", "../evil", "--", "true"], "--kernel-module"],
  ])("%j fails before any download, naming %s, exit 2", async (argv, flag) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toContain(flag);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  it("--list names every series, cached or not", async () => {
    const r = await run("vm", "--list", "--json");
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as { series: string }[];
    expect(rows.map((x) => x.series)).toEqual(["5.10", "6.1", "6.12", "sid"]);
  });
});

describeTier(BUSYBOX_TIER, busyboxMissing, "booting (a stand-in QEMU on PATH)", () => {
  /**
   * A fake qemu-system-x86_64: it finds the console socket and the job
   * folder in its arguments, as QEMU would pass them to the guest, and plays
   * a guest that panics while booting on the boots `panics` lists, or runs
   * the command (exit code 0) otherwise.
   */
  function fakeQemu(bin: string, panics: readonly number[]): void {
    const script = `#!${process.execPath}
const fs = require("node:fs"), net = require("node:net"), path = require("node:path");
const args = process.argv.slice(2);
const con = /path=([^,]+)/.exec(args[args.indexOf("-chardev") + 1])[1];
const job = args.map((a) => /^local,path=([^,]+),mount_tag=${JOB_TAG},/.exec(a)).find(Boolean)[1];
const count = path.join(${JSON.stringify(bin)}, "boots");
const boot = (fs.existsSync(count) ? Number(fs.readFileSync(count, "utf8")) : 0) + 1;
fs.writeFileSync(count, String(boot));
const s = net.connect(con, () => {
  if (${JSON.stringify(panics)}.includes(boot)) {
    s.end("[    2.4] Kernel panic - not syncing: Fatal exception in interrupt\\n");
  } else {
    s.write(${JSON.stringify(START_MARK)} + "\\n");
    fs.writeFileSync(path.join(job, "rc"), "0\\n");
    s.end();
  }
});
s.on("close", () => process.exit(0));
`;
    writeFileSync(join(bin, "qemu-system-x86_64"), script, { mode: 0o755 });
  }

  async function boot(panics: readonly number[]) {
    const root = mkdtempSync(join(dir, "boot-"));
    const bin = join(root, "bin");
    const mods = join(root, "modules");
    mkdirSync(bin);
    for (const name of SYSTEM_MODULES) {
      mkdirSync(join(mods, "kernel"), { recursive: true });
      writeFileSync(join(mods, "kernel", `${name}.ko`), elf(`name=${name}\0depends=\0`));
    }
    fakeQemu(bin, panics);
    const lines: string[] = [];
    const PATH = process.env["PATH"];
    process.env["PATH"] = `${bin}:${PATH}`;
    try {
      const r = await runVm({
        kernel: {
          series: "6.1",
          abi: "6.1.0-0-amd64",
          version: "0",
          vmlinuz: join(root, "vmlinuz"),
          modulesDir: mods,
          headersDir: root,
          packages: [],
        },
        argv: ["true"],
        stdout: () => {},
        stderr: () => {},
        progress: (l) => lines.push(l),
        timeoutSec: 30,
      });
      return { r, lines, boots: Number(readFileSync(join(bin, "boots"), "utf8")) };
    } finally {
      process.env["PATH"] = PATH;
    }
  }

  it("boots once more when the kernel panics before the command starts, and says so", async () => {
    const { r, lines, boots } = await boot([1]);
    expect(boots).toBe(2);
    expect(r.exitCode).toBe(0);
    expect(lines.join("\n")).toMatch(
      /panicked while booting, before the command started \(Kernel panic - not syncing: Fatal exception in interrupt\); booting it again/,
    );
  });

  it("a second panic is the result: a VmError quoting the console", async () => {
    const e = await boot([1, 2]).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(VmError);
    expect((e as Error).message).toMatch(/without the command's exit code[\s\S]*Kernel panic/);
  });

  it("a boot that works is not repeated", async () => {
    const { boots } = await boot([]);
    expect(boots).toBe(1);
  });
});
