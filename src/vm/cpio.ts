import { gzipSync } from "node:zlib";

/**
 * An initramfs: a gzip-compressed cpio archive in the "newc" format the
 * kernel unpacks (Documentation/driver-api/early-userspace/buffer-format.rst).
 * Built in memory: it holds busybox, a few modules and two scripts.
 */
export type CpioEntry =
  | { readonly type: "dir"; readonly path: string }
  | {
      readonly type: "file";
      readonly path: string;
      readonly data: Uint8Array;
      readonly mode?: number;
    }
  | { readonly type: "symlink"; readonly path: string; readonly target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

export function cpioArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const add = (path: string, mode: number, data: Uint8Array): void => {
    const name = Buffer.from(`${path}\0`);
    const header =
      "070701" +
      [ino++, mode, 0, 0, mode & S_IFDIR ? 2 : 1, 0, data.length, 0, 0, 0, 0, name.length, 0]
        .map(hex8)
        .join("");
    parts.push(Buffer.from(header, "ascii"), name, Buffer.alloc(pad4(110 + name.length)));
    parts.push(Buffer.from(data), Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, "");
    if (e.type === "dir") add(path, S_IFDIR | 0o755, new Uint8Array());
    else if (e.type === "file") add(path, S_IFREG | (e.mode ?? 0o644), e.data);
    else add(path, S_IFLNK | 0o777, Buffer.from(e.target));
  }
  add("TRAILER!!!", 0, new Uint8Array());
  return gzipSync(Buffer.concat(parts), { level: 1 });
}
