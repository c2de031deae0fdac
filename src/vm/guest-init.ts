/**
 * The two scripts of the guest: /init (busybox sh, PID 1 in the initramfs)
 * and the job script it runs, chrooted into the host's root. The guest
 * sees the host's root read-only over virtio-9p with a tmpfs overlay on
 * top, so every host path works and every write is thrown away at power-off,
 * except in the shared folders, which are mounted read-write at their own
 * paths.
 *
 * Serial lines: ttyS0 the kernel console, ttyS1 the command's stdout,
 * ttyS2 its stderr and this script's own messages. The exit code, timings
 * and the kernel log go to the job share, which the host reads afterwards.
 */

export const JOB_TAG = "toasimjob";
export const ROOT_TAG = "hostroot";
/** The exit code when the VM itself fails (as docker run and env use 125). */
export const EXIT_VM_FAILED = 125;
/** Written to the console just before the command starts: the host times the boot by it. */
export const START_MARK = "toasim-vm: command starts";

export interface GuestModule {
  /** File name inside the initramfs' /mods. */
  readonly file: string;
  readonly name: string;
  readonly params: readonly string[];
}

export interface GuestJob {
  readonly systemModules: readonly GuestModule[];
  readonly userModules: readonly GuestModule[];
  readonly shares: readonly { readonly tag: string; readonly path: string }[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly argv: readonly string[];
}

/** One shell word, safe whatever it holds. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

export function initScript(job: GuestJob): string {
  const q = shellQuote;
  const lines = [
    "#!/bin/busybox sh",
    "/bin/busybox --install -s /bin",
    "export PATH=/bin",
    "mount -t proc proc /proc",
    "mount -t sysfs sys /sys",
    "mount -t devtmpfs dev /dev",
    // Raw lines: no \\n -> \\r\\n on the way out, no echo.
    "stty -F /dev/ttyS1 raw -echo 2>/dev/null",
    "stty -F /dev/ttyS2 raw -echo 2>/dev/null",
    "exec 2>/dev/ttyS2 >/dev/ttyS2",
    `fail() { echo "toasim vm: $*" >&2; [ -d /job ] && echo ${EXIT_VM_FAILED} >/job/rc; poweroff -f; sleep 60; }`,
    "ms() { cut -d' ' -f1 /proc/uptime; }",
  ];
  for (const m of job.systemModules)
    lines.push(`insmod /mods/${m.file} || fail "cannot load the VM's own module ${m.name}"`);
  lines.push(
    "mkdir -p /job /lower /rw /newroot",
    `mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ${JOB_TAG} /job || fail "cannot mount the job folder"`,
    'echo "boot $(ms)" >/job/timing',
    `mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose ${ROOT_TAG} /lower || fail "cannot mount the host root"`,
    "mount -t tmpfs -o mode=755 tmpfs /rw && mkdir -p /rw/upper /rw/work",
    'mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "cannot mount the overlay root"',
    "R=/newroot",
    "mount -t proc proc $R/proc",
    "mount -t sysfs sys $R/sys",
    "mount -t devtmpfs dev $R/dev",
    "mkdir -p $R/dev/pts $R/dev/shm && mount -t devpts devpts $R/dev/pts && mount -t tmpfs tmpfs $R/dev/shm",
    "mount -t tmpfs -o mode=755 tmpfs $R/run",
    "mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null",
    "mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null",
    "mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null",
  );
  for (const s of job.shares) {
    lines.push(
      `mkdir -p $R${q(s.path)} && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ${s.tag} $R${q(s.path)} || fail ${q(`cannot mount the shared folder ${s.path}`)}`,
    );
  }
  for (const m of job.userModules) {
    const args = m.params.map(q).join(" ");
    lines.push(
      `out=$(insmod /mods/${m.file}${args ? ` ${args}` : ""} 2>&1) || { echo "$out" >&2; dmesg | tail -n 8 >&2; fail ${q(`insmod ${m.name} failed (the kernel log above says why)`)}; }`,
    );
  }
  lines.push(
    "ip link set lo up",
    "hostname toasim-vm",
    "mkdir -p $R/run/toasim-vm && cp /job.sh $R/run/toasim-vm/job.sh",
    `echo ${START_MARK} >/dev/ttyS0; echo "start $(ms)" >>/job/timing`,
    "chroot $R /bin/sh /run/toasim-vm/job.sh </dev/null >/dev/ttyS1 2>/dev/ttyS2",
    "rc=$?",
    'echo "end $(ms)" >>/job/timing',
    "dmesg >/job/dmesg",
    "echo $rc >/job/rc",
    "sync",
    "poweroff -f",
    "sleep 60",
  );
  return `${lines.join("\n")}\n`;
}

export function jobScript(job: GuestJob): string {
  const q = shellQuote;
  const env = Object.entries(job.env)
    .map(([k, v]) => `export ${k}=${q(v)}`)
    .join("\n");
  return [
    `cd ${q(job.cwd)} 2>/dev/null || cd / || exit ${EXIT_VM_FAILED}`,
    env,
    `exec ${job.argv.map(q).join(" ")}`,
    "",
  ].join("\n");
}
