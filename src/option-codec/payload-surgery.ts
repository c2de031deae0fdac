import { writeU16 } from "./bytes.js";
import { CodecError, CodecErrorCode } from "./errors.js";
import { IpProtocol } from "./ipv4.js";
import {
  fillIpv4Checksum,
  fillL4Checksum,
  growthLimit,
  type PacketInfo,
  setIpLength,
} from "./packet.js";
import { UdpField } from "./udp.js";

// Headers that go in front of the application payload (PROXY v1/v2, SPP).
// For TCP this shifts the byte stream: the gateway must then offset the
// sequence numbers of the connection, which is its job, not the codec's.

function setUdpLength(buf: Uint8Array, info: PacketInfo): void {
  if (info.protocol === IpProtocol.udp)
    writeU16(buf, info.l4Offset + UdpField.length, info.length - info.l4Offset);
}

/** Inserts `src[srcOff .. srcOff+len)` before the payload; false if it would pass `mtu`. */
export function insertPayloadPrefix(
  buf: Uint8Array,
  info: PacketInfo,
  src: Uint8Array,
  srcOff: number,
  len: number,
  mtu: number,
): boolean {
  if (info.protocol !== IpProtocol.tcp && info.protocol !== IpProtocol.udp) {
    throw new CodecError(
      CodecErrorCode.unsupported,
      info.l4Offset,
      `no payload prefix for protocol ${info.protocol}`,
    );
  }
  if (info.length + len > growthLimit(buf, info, mtu)) return false;
  const at = info.payloadOffset;
  buf.copyWithin(at + len, at, info.length);
  for (let i = 0; i < len; i++) buf[at + i] = src[srcOff + i]!;
  setIpLength(buf, info, info.length + len);
  setUdpLength(buf, info);
  fillIpv4Checksum(buf, info);
  fillL4Checksum(buf, info);
  return true;
}

/** Removes `len` bytes from the start of the payload. */
export function removePayloadPrefix(buf: Uint8Array, info: PacketInfo, len: number): void {
  const at = info.payloadOffset;
  if (at + len > info.length) {
    throw new CodecError(
      CodecErrorCode.truncated,
      at,
      `payload of ${info.length - at} bytes has no ${len}-byte prefix`,
    );
  }
  buf.copyWithin(at, at + len, info.length);
  setIpLength(buf, info, info.length - len);
  setUdpLength(buf, info);
  fillIpv4Checksum(buf, info);
  fillL4Checksum(buf, info);
}
