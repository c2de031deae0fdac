import type { IpAddress } from "../option-codec/address.js";
import { IpProtocol } from "../option-codec/ipv4.js";

interface Lip {
  readonly addr: Uint8Array;
  /** One bit per port, per protocol: taken or not. */
  readonly tcpPorts: Uint8Array;
  readonly udpPorts: Uint8Array;
  cursor: number;
}

/**
 * The gateway's local addresses (LIPs) toward IPv4 and IPv6 servers and
 * the ports taken on each: a new flow gets the next LIP in turn (one turn
 * for both families) and the next free port on it.
 */
export class LipPool {
  private readonly v4: Lip[];
  private readonly v6: Lip[];
  private turn = 0;
  /** The port of the last successful take(). */
  port = 0;

  constructor(
    lips4: readonly IpAddress[],
    lips6: readonly IpAddress[],
    private readonly portMin: number,
    private readonly portMax: number,
  ) {
    const lip = (addr: Uint8Array): Lip => ({
      addr,
      tcpPorts: new Uint8Array(8192),
      udpPorts: new Uint8Array(8192),
      cursor: portMin,
    });
    this.v4 = lips4.map(lip);
    this.v6 = lips6.map(lip);
  }

  count(family: 4 | 6): number {
    return (family === 4 ? this.v4 : this.v6).length;
  }

  addr(family: 4 | 6, li: number): Uint8Array {
    return (family === 4 ? this.v4 : this.v6)[li]!.addr;
  }

  /** The index of the LIP at `buf[off, off + len)`, or -1. */
  find(family: 4 | 6, buf: Uint8Array, off: number, len: number): number {
    const lips = family === 4 ? this.v4 : this.v6;
    for (let i = 0; i < lips.length; i++) if (sameBytes(lips[i]!.addr, buf, off, len)) return i;
    return -1;
  }

  /** A LIP with a free port for a new flow: its index (the port in `port`), or -1 when all are taken. */
  take(family: 4 | 6, proto: number): number {
    const lips = family === 4 ? this.v4 : this.v6;
    for (let tries = 0; tries < lips.length; tries++) {
      const li = this.turn++ % lips.length;
      const p = this.takePort(lips[li]!, proto);
      if (p >= 0) {
        this.port = p;
        return li;
      }
    }
    return -1;
  }

  free(family: 4 | 6, li: number, proto: number, port: number): void {
    const lip = (family === 4 ? this.v4 : this.v6)[li]!;
    const bits = proto === IpProtocol.tcp ? lip.tcpPorts : lip.udpPorts;
    bits[port >> 3] = bits[port >> 3]! & ~(1 << (port & 7));
  }

  private takePort(lip: Lip, proto: number): number {
    const bits = proto === IpProtocol.tcp ? lip.tcpPorts : lip.udpPorts;
    const { portMin, portMax } = this;
    const span = portMax - portMin + 1;
    let p = lip.cursor;
    for (let i = 0; i < span; i++) {
      if (p > portMax) p = portMin;
      if ((bits[p >> 3]! & (1 << (p & 7))) === 0) {
        bits[p >> 3] = bits[p >> 3]! | (1 << (p & 7));
        lip.cursor = p + 1;
        return p;
      }
      p++;
    }
    return -1;
  }
}

export function sameBytes(a: Uint8Array, buf: Uint8Array, off: number, len: number): boolean {
  if (a.length !== len) return false;
  for (let i = 0; i < len; i++) if (a[i] !== buf[off + i]) return false;
  return true;
}
