/**
 * Socket-option readers for server applications behind a TOA/UOA decoder
 * (the toasim module or the eBPF decoder): the ABIs of
 * kmod/include/uapi/toasim.h, as pure codecs (abi.ts) and as calls on a
 * Node socket (readers.ts).
 */

export { Errno } from "../errno.js";
export * from "./abi.js";
export * from "./address.js";
export * from "./errors.js";
export { type SocketLike, socketFd } from "./fd.js";
export {
  decodeSockaddr,
  localName,
  peerName,
  toaCtl,
  toaLookup,
  ttmPeer,
  uoaLookup,
} from "./readers.js";
