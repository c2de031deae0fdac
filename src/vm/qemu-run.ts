import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { onPath } from "../run-process.js";
import { GUEST_MARK } from "../tun/topology.js";
import { type CpioEntry, cpioArchive } from "./cpio.js";
import { VmError, VmErrorCode } from "./errors.js";
import {
  EXIT_VM_FAILED,
  type GuestModule,
  initScript,
  JOB_TAG,
  jobScript,
  ROOT_TAG,
  START_MARK,
} from "./guest-init.js";
import type { KernelFiles } from "./kernel-fetch.js";
import { builtFor, ModuleTree, moduleBytes, parseModInfo } from "./kmod-files.js";

/**
 * Boots a kernel under QEMU (software emulation: KVM does not work on these
 * machines) with a busybox initramfs, runs one command in the host's root,
 * and returns its exit code. The command's stdout and stderr stream through
 * two serial lines; the kernel console through a third.
 */

/** What every guest needs: virtio-pci, 9p (the shared root), overlay, TUN for toasim up. */
export const SYSTEM_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "tun"] as const;

const BUSYBOX = "/bin/busybox";
const QEMU = "qemu-system-x86_64";
const PROBLEM =
  /\b(Oops|BUG:|WARNING:|general protection fault|Kernel panic|UBSAN:|KASAN:|RIP: |Call Trace:|kmemleak|refcount_t:)/;

export interface UserModule {
  readonly path: string;
  readonly params: readonly string[];
}

export interface VmRunOptions {
  readonly kernel: KernelFiles;
  readonly argv: readonly string[];
  readonly modules?: readonly UserModule[];
  /** In-tree modules of the guest kernel to load too (nf_conntrack, veth...). */
  readonly kernelModules?: readonly string[];
  /** Host folders mounted read-write at the same path in the guest. */
  readonly shares?: readonly string[];
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cpus?: number;
  readonly memoryMb?: number;
  readonly timeoutSec?: number;
  readonly stdout: (chunk: Buffer) => void;
  readonly stderr: (chunk: Buffer) => void;
  /** The kernel console as it arrives (null: kept for the log only). */
  readonly console?: ((chunk: Buffer) => void) | null;
  readonly consoleLog?: string;
  readonly progress?: (line: string) => void;
}

export interface VmResult {
  /** The command's exit code (EXIT_VM_FAILED when the guest could not run it). */
  readonly exitCode: number;
  /** Wall time from QEMU's start to the command's start, ms (null if it never started). */
  readonly bootMs: number | null;
  readonly totalMs: number;
  /** The guest's kernel log at the end (dmesg). */
  readonly dmesg: string;
  /** Lines of the kernel log that report an oops, BUG, WARN or similar. */
  readonly kernelProblems: readonly string[];
}

export async function runVm(opts: VmRunOptions): Promise<VmResult> {
  checkBusybox();
  const kernel = opts.kernel;
  const say = opts.progress ?? (() => {});
  const tree = new ModuleTree(kernel.modulesDir);
  const system = await tree.resolve([...SYSTEM_MODULES, ...(opts.kernelModules ?? [])]);
  const user: { module: GuestModule; bytes: Buffer }[] = [];
  for (const [i, m] of (opts.modules ?? []).entries()) {
    if (!existsSync(m.path))
      throw new VmError(VmErrorCode.badInput, `module ${m.path} does not exist`);
    const bytes = await moduleBytes(m.path);
    const info = parseModInfo(bytes, m.path);
    const release = builtFor(info);
    if (release !== kernel.abi) {
      throw new VmError(
        VmErrorCode.badInput,
        `module ${m.path} was built for ${release || "an unknown kernel"}, the VM runs ${kernel.abi} (build it against that kernel: toasim vm --kernel ${kernel.series} --build DIR)`,
      );
    }
    user.push({
      module: { file: `user/${i}-${info.name}.ko`, name: info.name, params: m.params },
      bytes,
    });
  }
  const shares = (opts.shares ?? []).map((p, i) => {
    const path = resolve(p);
    if (!existsSync(path))
      throw new VmError(VmErrorCode.badInput, `shared folder ${path} does not exist`);
    return { tag: `share${i}`, path };
  });

  const work = mkdtempSync(join(tmpdir(), "toasim-vm-"));
  const jobDir = join(work, "job");
  mkdirSync(jobDir);
  const sockets: net.Server[] = [];
  let qemu: ChildProcess | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    qemu?.kill("SIGKILL");
    cleanup();
    process.kill(process.pid, sig);
  };
  const cleanup = (): void => {
    for (const s of sockets) s.close();
    rmSync(work, { recursive: true, force: true });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const job = {
      systemModules: system.map((m, i) => ({
        file: `sys/${String(i).padStart(2, "0")}-${m.name}.ko`,
        name: m.name,
        params: [],
      })),
      userModules: user.map((u) => u.module),
      shares,
      cwd: opts.cwd ?? process.cwd(),
      env: {
        PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        HOME: "/root",
        LANG: "C.UTF-8",
        TERM: "dumb",
        TOASIM_VM: kernel.abi,
        ...(opts.env ?? {}),
      },
      argv: opts.argv,
    };
    const init = initScript(job);
    const entries: CpioEntry[] = [
      ...["bin", "dev", "proc", "sys", "mods", "mods/sys", "mods/user"].map(
        (d) => ({ type: "dir", path: d }) as const,
      ),
      { type: "file", path: "bin/busybox", data: readFileSync(BUSYBOX), mode: 0o755 },
      { type: "file", path: "init", data: Buffer.from(init), mode: 0o755 },
      { type: "file", path: "job.sh", data: Buffer.from(jobScript(job)), mode: 0o644 },
      ...system.map((m, i) => ({
        type: "file" as const,
        path: `mods/${job.systemModules[i]!.file}`,
        data: m.bytes,
      })),
      ...user.map((u) => ({ type: "file" as const, path: `mods/${u.module.file}`, data: u.bytes })),
    ];
    const initrd = join(work, "initrd.cpio.gz");
    writeFileSync(initrd, cpioArchive(entries));

    let consoleText = "";
    let startedAt: number | null = null;
    const t0 = Date.now();
    const listen = async (name: string, sink: (b: Buffer) => void): Promise<string> => {
      const path = join(work, `${name}.sock`);
      const server = net.createServer((c) => {
        c.on("data", sink);
        c.on("error", () => {});
      });
      sockets.push(server);
      await new Promise<void>((res, rej) => {
        server.once("error", rej);
        server.listen(path, res);
      });
      return path;
    };
    const conSock = await listen("console", (b) => {
      const s = b.toString("latin1");
      consoleText += s;
      if (startedAt === null && consoleText.includes(START_MARK)) startedAt = Date.now();
      opts.console?.(b);
    });
    const outSock = await listen("stdout", opts.stdout);
    const errSock = await listen("stderr", opts.stderr);

    const args = [
      "-accel",
      "tcg,thread=multi",
      "-cpu",
      "max",
      "-smp",
      String(opts.cpus ?? 2),
      "-m",
      String(opts.memoryMb ?? 2048),
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      ...["con", "out", "err"].flatMap((id, i) => [
        "-chardev",
        `socket,id=${id},path=${[conSock, outSock, errSock][i]},server=off`,
        "-serial",
        `chardev:${id}`,
      ]),
      "-kernel",
      kernel.vmlinuz,
      "-initrd",
      initrd,
      "-append",
      `console=ttyS0 quiet panic=-1 ${GUEST_MARK}`,
      "-virtfs",
      `local,path=/,mount_tag=${ROOT_TAG},security_model=none,readonly=on,multidevs=remap`,
      "-virtfs",
      `local,path=${jobDir},mount_tag=${JOB_TAG},security_model=none,multidevs=remap`,
      ...shares.flatMap((s) => [
        "-virtfs",
        `local,path=${s.path},mount_tag=${s.tag},security_model=none,multidevs=remap`,
      ]),
    ];
    say(
      `booting ${kernel.abi} under QEMU (TCG, ${opts.cpus ?? 2} CPUs, ${opts.memoryMb ?? 2048} MiB)`,
    );
    if (onPath(QEMU) === null) {
      throw new VmError(
        VmErrorCode.missingTool,
        `${QEMU} is not installed (Debian package qemu-system-x86; toasim doctor --install installs what is missing)`,
      );
    }
    // setpriv --pdeathsig: QEMU dies with this process even when it is
    // SIGKILLed and cannot clean up (util-linux, on every Debian machine).
    const argv =
      onPath("setpriv") === null
        ? [QEMU, ...args]
        : ["setpriv", "--pdeathsig", "KILL", "--", QEMU, ...args];
    // A boot that panics before the command starts ran nothing: it is booted
    // once more (seen rarely with sid's kernel under TCG, in the crypto
    // self-tests at boot); a second panic is the result.
    let exit: { code: number | null; error: Error | null };
    let qemuErr = "";
    let timedOut = false;
    for (let boot = 1; ; boot++) {
      consoleText = "";
      startedAt = null;
      qemuErr = "";
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
      qemu = child;
      child.stderr?.setEncoding("utf8").on("data", (d: string) => {
        qemuErr += d;
      });
      const timer = setTimeout(
        () => {
          timedOut = true;
          child.kill("SIGKILL");
        },
        (opts.timeoutSec ?? 1800) * 1000,
      );
      exit = await new Promise<{ code: number | null; error: Error | null }>((res) => {
        child.once("error", (e) => res({ code: null, error: e }));
        child.once("exit", (code) => res({ code, error: null }));
      });
      clearTimeout(timer);
      qemu = null;
      // The serial sockets may still hold the last bytes.
      await new Promise((r) => setTimeout(r, 100));
      const panic = /Kernel panic - .*/.exec(consoleText)?.[0];
      if (boot > 1 || exit.error !== null || timedOut || startedAt !== null || panic === undefined)
        break;
      say(
        `the guest kernel panicked while booting, before the command started (${panic.trim()}); booting it again`,
      );
    }
    if (opts.consoleLog !== undefined) writeFileSync(opts.consoleLog, consoleText);
    if (exit.error !== null) {
      const missing = (exit.error as NodeJS.ErrnoException).code === "ENOENT";
      throw new VmError(
        missing ? VmErrorCode.missingTool : VmErrorCode.vmFailed,
        missing
          ? `${QEMU} is not installed (Debian package qemu-system-x86; toasim doctor --install installs what is missing)`
          : `cannot start ${QEMU}: ${exit.error.message}`,
      );
    }
    const dmesg = readIfExists(join(jobDir, "dmesg")) ?? consoleText;
    const problems = dmesg.split("\n").filter((l) => PROBLEM.test(l));
    if (timedOut) {
      throw new VmError(
        VmErrorCode.timeout,
        `the guest did not finish within ${opts.timeoutSec ?? 1800} s (killed); last console lines:\n${lastLines(consoleText)}`,
      );
    }
    const rcText = readIfExists(join(jobDir, "rc"));
    if (rcText === null) {
      throw new VmError(
        VmErrorCode.vmFailed,
        `the guest ended without the command's exit code (QEMU exit ${exit.code}${qemuErr ? `: ${qemuErr.trim()}` : ""}); last console lines:\n${lastLines(consoleText)}`,
      );
    }
    return {
      exitCode: Number.parseInt(rcText, 10) || (rcText.trim() === "0" ? 0 : EXIT_VM_FAILED),
      bootMs: startedAt === null ? null : startedAt - t0,
      totalMs: Date.now() - t0,
      dmesg,
      kernelProblems: problems,
    };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    qemu?.kill("SIGKILL");
    cleanup();
  }
}

function readIfExists(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function lastLines(text: string, n = 12): string {
  const lines = text.replaceAll("\r", "").trimEnd().split("\n");
  return lines.slice(-n).join("\n") || "(the console printed nothing)";
}

/** busybox must be the static build: it runs before any library is there. */
function checkBusybox(): void {
  let elf: Buffer;
  try {
    elf = readFileSync(BUSYBOX);
  } catch {
    throw new VmError(
      VmErrorCode.missingTool,
      `${BUSYBOX} is missing (Debian package busybox-static; toasim doctor --install installs what is missing)`,
    );
  }
  if (hasInterpreter(elf)) {
    throw new VmError(
      VmErrorCode.missingTool,
      `${BUSYBOX} is dynamically linked; the initramfs needs Debian's busybox-static`,
    );
  }
}

/** True when an ELF64 file names a program interpreter (is dynamically linked). */
function hasInterpreter(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 <= elf.length && elf.readUInt32LE(at) === 3) return true;
  }
  return false;
}
