import {
  decodeToaCtl,
  decodeToaLookup,
  decodeTtmPeer,
  decodeUoaDpvsReply,
  decodeUoaNoaReply,
  encodeUoaDpvsRequest,
  encodeUoaNoaRequest,
  familyOfAf,
  Layout,
  Optname,
  SOL_IP,
  type ToaCtl,
  type UoaForm,
  type UoaQuery,
} from "./abi.js";
import { formatAddress, type SockAddr } from "./address.js";
import { SockoptError, SockoptErrorCode } from "./errors.js";
import { type SocketLike, socketFd } from "./fd.js";
import { sockLibc } from "./libc.js";

/**
 * The readers an application calls on its accepted TCP or bound UDP socket.
 * Each makes one system call into buffers allocated once per thread and
 * zeroed before every call, so a reply shorter than asked can never be
 * mistaken for stale bytes of an earlier one.
 */

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Big enough for every layout (58) and for a sockaddr_storage (128). */
const value = new Uint8Array(128);
const length = new Uint8Array(4);
const lengthView = new DataView(length.buffer);

function setLength(n: number): void {
  lengthView.setUint32(0, n, HOST_LE);
}

function getLength(): number {
  return lengthView.getUint32(0, HOST_LE);
}

/**
 * getsockopt(fd, IPPROTO_IP, optname) with a `size`-byte buffer that
 * `fill` may put a request into; returns the bytes the kernel says it wrote.
 */
function getsockopt(
  sock: SocketLike,
  optname: number,
  size: number,
  fill?: (b: Uint8Array) => void,
): Uint8Array {
  const fd = socketFd(sock);
  const c = sockLibc();
  value.fill(0);
  fill?.(value.subarray(0, size));
  setLength(size);
  const rc = c.getsockopt(fd, SOL_IP, optname, value, length);
  if (rc !== 0) {
    const errno = c.errno();
    throw new SockoptError(
      SockoptErrorCode.syscallFailed,
      `getsockopt(IPPROTO_IP, ${optname}) with ${size} bytes on fd ${fd}`,
      errno,
    );
  }
  return value.subarray(0, Math.min(getLength(), size));
}

type NameCall = "getpeername" | "getsockname";

function sockName(sock: SocketLike, call: NameCall): SockAddr {
  const fd = socketFd(sock);
  const c = sockLibc();
  value.fill(0);
  setLength(value.length);
  const rc = c[call](fd, value, length);
  if (rc !== 0) {
    const errno = c.errno();
    throw new SockoptError(SockoptErrorCode.syscallFailed, `${call} on fd ${fd}`, errno);
  }
  return decodeSockaddr(value.subarray(0, Math.min(getLength(), value.length)), call);
}

/** struct sockaddr_in (16 bytes) or sockaddr_in6 (28); family in host order at 0. */
export function decodeSockaddr(b: Uint8Array, what = "sockaddr"): SockAddr {
  if (b.length < 2) {
    throw new SockoptError(
      SockoptErrorCode.shortBuffer,
      `${what}: ${b.length}-byte address`,
      null,
      {
        got: b.length,
      },
    );
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = familyOfAf(dv.getUint16(0, HOST_LE), what);
  const need = family === 4 ? 16 : 28;
  if (b.length < need) {
    throw new SockoptError(
      SockoptErrorCode.shortBuffer,
      `${what}: ${b.length}-byte sockaddr, AF_INET${family === 6 ? "6" : ""} needs ${need}`,
      null,
      { got: b.length },
    );
  }
  return {
    family,
    address: formatAddress(family, b, family === 4 ? 4 : 8),
    port: dv.getUint16(2, false),
  };
}

/**
 * getpeername(): with a TOA decoder loaded, the client itself (a v4 client
 * on a v6 socket as the kernel gives it: family 6, `::ffff:a.b.c.d`).
 */
export function peerName(sock: SocketLike): SockAddr {
  return sockName(sock, "getpeername");
}

/** getsockname(): the socket's own address (for UDP, the bound address a UOA lookup needs). */
export function localName(sock: SocketLike): SockAddr {
  return sockName(sock, "getsockname");
}

/** 2049 (noa TOA_CTL) on an accepted TCP socket. */
export function toaCtl(sock: SocketLike): ToaCtl {
  const L = Layout.toaCtl;
  return decodeToaCtl(getsockopt(sock, Optname.TOASIM_SO_TOA_CTL, L.size));
}

/** 4096 (DPVS TOA_SO_GET_LOOKUP): the v6 client of a v4 socket (NAT64). */
export function toaLookup(sock: SocketLike): SockAddr {
  const L = Layout.toaLookup;
  return decodeToaLookup(getsockopt(sock, Optname.TOASIM_SO_TOA_LOOKUP, L.size));
}

/** 1345 (Kingsoft kgwttm). */
export function ttmPeer(sock: SocketLike): SockAddr {
  const L = Layout.ttmPeer;
  return decodeTtmPeer(getsockopt(sock, Optname.TOASIM_SO_TTM_PEER, L.size));
}

/**
 * 2048 (UOA) on a bound UDP socket: `source` is the datagram's source as
 * received (the gateway's local address), `dest` the address the socket is
 * bound to. The kernel keys its table on both, so a wildcard `dest`
 * (0.0.0.0, ::) finds nothing: bind UDP servers to a specific address.
 * `form` picks the buffer: 56 bytes (noa) or 58 (DPVS).
 */
export function uoaLookup(sock: SocketLike, query: UoaQuery, form: UoaForm): SockAddr {
  if (form === "noa") {
    const b = getsockopt(sock, Optname.TOASIM_SO_UOA, Layout.uoaNoa.size, (buf) => {
      encodeUoaNoaRequest(query, buf);
    });
    return decodeUoaNoaReply(b);
  }
  if (form === "dpvs") {
    const b = getsockopt(sock, Optname.TOASIM_SO_UOA, Layout.uoaDpvs.size, (buf) => {
      encodeUoaDpvsRequest(query, buf);
    });
    return decodeUoaDpvsReply(b);
  }
  throw new SockoptError(
    SockoptErrorCode.invalidArgument,
    `UOA form must be "noa" or "dpvs", got ${JSON.stringify(form)}`,
  );
}
