import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "../cache-dir.js";
import { shippedPath } from "../package-files.js";
import { DecoderError, DecoderErrorCode } from "./errors.js";

/**
 * The BPF object, compiled on first use with Debian's clang, against a
 * vmlinux.h that bpftool writes from the running kernel's BTF (CO-RE: the
 * object's few reads of kernel structures are relocated at load time), and
 * cached by the hash of the sources and of that BTF.
 */

const SOURCES = ["toasim.bpf.c", "decoder.h"] as const;
export const KERNEL_BTF = "/sys/kernel/btf/vmlinux";

function run(cmd: string, args: string[], what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) {
        resolve(stdout);
        return;
      }
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        reject(
          new DecoderError(
            DecoderErrorCode.missingTool,
            `${cmd} is not installed (Debian package ${cmd === "bpftool" ? "bpftool" : "clang"}; toasim doctor --install installs what is missing)`,
          ),
        );
        return;
      }
      reject(
        new DecoderError(
          DecoderErrorCode.buildFailed,
          `${what} failed:\n${String(stderr).trim().split("\n").slice(-20).join("\n")}`,
        ),
      );
    });
  });
}

/** The compiled object's path, building it if the cache has none for these sources and this kernel. */
export async function decoderObject(btf = KERNEL_BTF): Promise<string> {
  if (!existsSync(btf)) {
    throw new DecoderError(
      DecoderErrorCode.unavailable,
      `the kernel has no BTF (${btf} is missing; the decoder needs CONFIG_DEBUG_INFO_BTF)`,
    );
  }
  const src = shippedPath("bpf");
  const h = createHash("sha256");
  for (const f of SOURCES) h.update(readFileSync(join(src, f)));
  // The kernel's BTF changes with the kernel; its size and mtime tell apart
  // builds without reading the whole file.
  const st = statSync(btf);
  h.update(`${st.size}:${st.mtimeMs}`);
  const id = h.digest("hex").slice(0, 16);
  const dir = join(cacheDir(), "bpf", id);
  const obj = join(dir, "toasim.bpf.o");
  if (existsSync(obj)) return obj;
  mkdirSync(dir, { recursive: true });
  const vmlinux = join(dir, "vmlinux.h");
  const header = await run(
    "bpftool",
    ["btf", "dump", "file", btf, "format", "c"],
    "bpftool btf dump",
  );
  writeFileSync(vmlinux, header);
  for (const f of SOURCES) writeFileSync(join(dir, f), readFileSync(join(src, f)));
  const arch = process.arch === "arm64" ? "arm64" : "x86";
  const tmp = `${obj}.${process.pid}.tmp`;
  await run(
    "clang",
    [
      "-O2",
      "-g",
      "-Wall",
      "-Werror",
      "-target",
      "bpf",
      `-D__TARGET_ARCH_${arch}`,
      `-I${dir}`,
      "-c",
      join(dir, "toasim.bpf.c"),
      "-o",
      tmp,
    ],
    "clang -target bpf",
  );
  renameSync(tmp, obj);
  return obj;
}
