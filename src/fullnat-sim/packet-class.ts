/**
 * What a packet the gateway sends is, in the terms fault rules select by.
 * The gateway sets a bitmask of these on every packet it returns (it alone
 * knows the connection's state, e.g. which ACK completes a handshake), so
 * that fault injection never parses a packet a second time.
 */
export const PacketClass = {
  /** TCP SYN without ACK (toward the server). */
  syn: 1,
  /** TCP SYN+ACK (toward the client). */
  synAck: 2,
  /** The client's first ACK after the server's SYN+ACK, with or without data. */
  handshakeAck: 4,
  /** Carries the client address the gateway put in: TOA, UOA, PROXY or SPP header. */
  toa: 8,
  /** TCP with payload. */
  data: 16,
  fin: 32,
  rst: 64,
  /** Any UDP datagram (the UOA ipo probe included). */
  udp: 128,
} as const;

/** The names fault rules use, as written in scenario files and on the command line. */
export const PACKET_CLASS_NAMES = {
  syn: PacketClass.syn,
  "syn-ack": PacketClass.synAck,
  "handshake-ack": PacketClass.handshakeAck,
  toa: PacketClass.toa,
  data: PacketClass.data,
  fin: PacketClass.fin,
  rst: PacketClass.rst,
  udp: PacketClass.udp,
} as const;
export type PacketClassName = keyof typeof PACKET_CLASS_NAMES;

export function packetClassNames(mask: number): PacketClassName[] {
  return (Object.keys(PACKET_CLASS_NAMES) as PacketClassName[]).filter(
    (n) => (mask & PACKET_CLASS_NAMES[n]) !== 0,
  );
}
