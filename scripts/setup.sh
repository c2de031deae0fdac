#!/bin/sh
# Installs, idempotently, everything toasim needs on a Debian machine:
# Debian packages (as root) and the npm dependencies. Safe to run often:
# each step is skipped when already done.
set -eu
cd "$(dirname "$0")/.."

# Debian packages, by the tier that needs them.
#   tshark (with dumpcap): the independent decoder of the oracle and e2e tests.
#   iproute2: namespaces, addresses, routes (the gateway itself needs it).
#   curl, socat, python3: real clients and servers of the e2e tests and demo.
#   nginx: a real server that parses PROXY protocol v2.
#   nftables, util-linux (nsenter): `toasim exec client --as ADDR`.
#   apache2-utils (ab), iperf3, with nginx, curl, python3, nftables: `npm run bench`.
#   qemu-system-x86, busybox-static: `toasim vm` (the kernel tier) boots
#     Debian kernels under QEMU with a busybox initramfs;
#   gcc, make, libc6-dev, dwarves (pahole, for module BTF), xz-utils, zstd
#     (compressed modules): building kmod/ and the C reader against them;
#   kmod (insmod, rmmod, lsmod): run in the guest from this machine's root.
#   clang, bpftool, libbpf-dev (headers, and libbpf1 for the loader): the
#     eBPF decoder, compiled on first use against this kernel's BTF.
#   python3-jsonschema: the independent check of scenarios/scenario.schema.json.
#   chromium: a real browser, headless, renders the HTML reports of `toasim
#     check` and `toasim scenario run --report` and reports console errors
#     (test/e2e/check-report-browser.test.ts).
DEBS="tshark iproute2 curl socat python3 nginx nftables util-linux apache2-utils iperf3
  qemu-system-x86 busybox-static gcc make libc6-dev dwarves xz-utils zstd kmod
  clang bpftool libbpf-dev python3-jsonschema chromium"

missing=""
for p in $DEBS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq
    # Packages with a service (nginx) must not start one on the host: the
    # tests run their own servers inside toasim's namespaces only.
    blocker=/usr/sbin/policy-rc.d
    own_blocker=false
    if [ ! -e "$blocker" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$blocker" && chmod +x "$blocker" && own_blocker=true
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
      [ "$own_blocker" = true ] && rm -f "$blocker"
      exit 1
    }
    [ "$own_blocker" = true ] && rm -f "$blocker"
  elif [ "${CI:-}" = "true" ]; then
    echo "setup: missing Debian packages:$missing, and not root to install them" >&2
    exit 1
  else
    echo "setup: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing); the tiers that need them will skip" >&2
  fi
fi

# npm dependencies: reinstalled only when the lockfile changed.
stamp=node_modules/.toasim-setup-stamp
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing npm dependencies"
  # Not `npm ci`: with this machine's npm settings the lockfile omits other
  # platforms' optional packages, which `npm ci` then refuses; `npm install`
  # follows the same lockfile.
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
