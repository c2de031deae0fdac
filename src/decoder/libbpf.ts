import { type Ffi, type FfiLib, openLibrary } from "../ffi.js";
import { DecoderError, DecoderErrorCode } from "./errors.js";

/**
 * The libbpf calls the loader makes (Debian's libbpf1), through koffi,
 * loaded on first use. libbpf rather than bpftool: attachments are links
 * held by this process's file descriptors, so a killed toasim detaches its
 * programs by dying (nothing pinned, nothing to clean up), and errors come
 * back as errno values and the verifier's own log rather than as text to
 * parse. Objects are opaque pointers; structs are byte buffers laid out by
 * hand (bpf_tc_hook, bpf_tc_opts: libbpf's "sz"-prefixed option structs).
 */
export type Ptr = unknown;

export interface LibBpf {
  openFile(path: string): Ptr | null;
  load(obj: Ptr): number;
  close(obj: Ptr): void;
  programByName(obj: Ptr, name: string): Ptr | null;
  programFd(prog: Ptr): number;
  setLogBuf(prog: Ptr, buf: Uint8Array, size: number): number;
  setLogLevel(prog: Ptr, level: number): number;
  mapFdByName(obj: Ptr, name: string): number;
  attachCgroup(prog: Ptr, cgroupFd: number): Ptr | null;
  linkFd(link: Ptr): number;
  linkPin(link: Ptr, path: string): number;
  linkDestroy(link: Ptr): number;
  linkDisconnect(link: Ptr): void;
  objPin(fd: number, path: string): number;
  objGet(path: string): number;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags: number): number;
  mapLookup(fd: number, key: Uint8Array, value: Uint8Array): number;
  mapNextKey(fd: number, key: Uint8Array | null, next: Uint8Array): number;
  mapDelete(fd: number, key: Uint8Array): number;
  tcHookCreate(hook: Uint8Array): number;
  tcAttach(hook: Uint8Array, opts: Uint8Array): number;
  tcDetach(hook: Uint8Array, opts: Uint8Array): number;
  numCpus(): number;
  ifNameToIndex(name: string): number;
  close2(fd: number): number;
  errno(): number;
}

/** Sizes and offsets of libbpf's tc structs on 64-bit Linux. */
export const TcLayout = {
  hookSize: 24, // size_t sz; int ifindex; enum attach_point; u32 parent; (pad)
  optsSize: 32, // size_t sz; int prog_fd; u32 flags; u32 prog_id; u32 handle; u32 priority; (pad)
  BPF_TC_INGRESS: 1,
} as const;

let loaded: LibBpf | null = null;

export function libbpf(): LibBpf {
  if (loaded !== null) return loaded;
  let koffi: Ffi;
  let lib: FfiLib;
  try {
    ({ koffi, lib } = openLibrary(
      "libbpf.so.1",
      "the eBPF loader uses",
      "Debian package libbpf1; toasim doctor --install installs what is missing",
    ));
  } catch (e) {
    throw new DecoderError(DecoderErrorCode.missingTool, (e as Error).message, null, { cause: e });
  }
  const libc = koffi.load(null);
  const f = (def: string): unknown => lib.func(def);
  // libbpf prints its warnings to stderr by default; errors are reported here instead.
  (f("void *libbpf_set_print(void *fn)") as (fn: null) => unknown)(null);
  const openFile = f("void *bpf_object__open_file(const char *path, void *opts)") as (
    path: string,
    opts: null,
  ) => Ptr | null;
  loaded = {
    openFile: (path) => openFile(path, null),
    load: f("int bpf_object__load(void *obj)") as LibBpf["load"],
    close: f("void bpf_object__close(void *obj)") as LibBpf["close"],
    programByName: f(
      "void *bpf_object__find_program_by_name(void *obj, const char *name)",
    ) as LibBpf["programByName"],
    programFd: f("int bpf_program__fd(void *prog)") as LibBpf["programFd"],
    setLogBuf: f(
      "int bpf_program__set_log_buf(void *prog, void *buf, unsigned long size)",
    ) as LibBpf["setLogBuf"],
    setLogLevel: f(
      "int bpf_program__set_log_level(void *prog, uint32_t level)",
    ) as LibBpf["setLogLevel"],
    mapFdByName: f(
      "int bpf_object__find_map_fd_by_name(void *obj, const char *name)",
    ) as LibBpf["mapFdByName"],
    attachCgroup: f(
      "void *bpf_program__attach_cgroup(void *prog, int fd)",
    ) as LibBpf["attachCgroup"],
    linkFd: f("int bpf_link__fd(void *link)") as LibBpf["linkFd"],
    linkPin: f("int bpf_link__pin(void *link, const char *path)") as LibBpf["linkPin"],
    linkDestroy: f("int bpf_link__destroy(void *link)") as LibBpf["linkDestroy"],
    linkDisconnect: f("void bpf_link__disconnect(void *link)") as LibBpf["linkDisconnect"],
    objPin: f("int bpf_obj_pin(int fd, const char *path)") as LibBpf["objPin"],
    objGet: f("int bpf_obj_get(const char *path)") as LibBpf["objGet"],
    mapUpdate: f(
      "int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)",
    ) as LibBpf["mapUpdate"],
    mapLookup: f("int bpf_map_lookup_elem(int fd, void *key, void *value)") as LibBpf["mapLookup"],
    mapNextKey: f(
      "int bpf_map_get_next_key(int fd, void *key, void *next)",
    ) as LibBpf["mapNextKey"],
    mapDelete: f("int bpf_map_delete_elem(int fd, void *key)") as LibBpf["mapDelete"],
    tcHookCreate: f("int bpf_tc_hook_create(void *hook)") as LibBpf["tcHookCreate"],
    tcAttach: f("int bpf_tc_attach(void *hook, void *opts)") as LibBpf["tcAttach"],
    tcDetach: f("int bpf_tc_detach(void *hook, void *opts)") as LibBpf["tcDetach"],
    numCpus: f("int libbpf_num_possible_cpus()") as LibBpf["numCpus"],
    ifNameToIndex: libc.func(
      "unsigned int if_nametoindex(const char *name)",
    ) as LibBpf["ifNameToIndex"],
    close2: libc.func("int close(int fd)") as LibBpf["close2"],
    errno: () => koffi.errno(),
  };
  return loaded;
}
