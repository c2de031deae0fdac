import dgram from "node:dgram";
import type net from "node:net";
import { SockoptError, SockoptErrorCode } from "./errors.js";

/** What the readers accept: an accepted TCP socket, a bound UDP socket, or a raw fd. */
export type SocketLike = net.Socket | dgram.Socket | number;

interface HandleWithFd {
  readonly fd?: unknown;
}

/**
 * The file descriptor under a Node socket. Node has no public API for it;
 * on Linux libuv's handle exposes it as `fd` (TCPWrap, UDPWrap). A dgram
 * socket keeps its handle under an internal symbol whose public `_handle`
 * getter is deprecated (DEP0112, a warning on first use), so the symbol is
 * looked up by its description first and `_handle` is only the fallback.
 */
export function socketFd(sock: SocketLike): number {
  if (typeof sock === "number") {
    if (!Number.isInteger(sock) || sock < 0) {
      throw new SockoptError(
        SockoptErrorCode.invalidArgument,
        `not a file descriptor: ${String(sock)}`,
      );
    }
    return sock;
  }
  if (process.platform !== "linux") {
    throw new SockoptError(
      SockoptErrorCode.unsupported,
      `reading a Node socket's fd needs Linux (this is ${process.platform})`,
    );
  }
  if (sock instanceof dgram.Socket) {
    const fd = fdOf(dgramHandle(sock));
    if (fd === null) {
      throw new SockoptError(
        SockoptErrorCode.noFd,
        "UDP socket has no file descriptor: it is closed or not bound yet (read after 'listening')",
      );
    }
    return fd;
  }
  const handle = (sock as unknown as { _handle?: unknown })._handle;
  if (handle === undefined) {
    throw new SockoptError(
      SockoptErrorCode.unsupported,
      "not a net.Socket or dgram.Socket (no libuv handle)",
    );
  }
  const fd = fdOf(handle);
  if (fd === null) {
    throw new SockoptError(
      SockoptErrorCode.noFd,
      "TCP socket has no file descriptor: it is closed, or not connected yet",
    );
  }
  return fd;
}

function dgramHandle(sock: dgram.Socket): unknown {
  const key = Object.getOwnPropertySymbols(sock).find((s) => s.description === "state symbol");
  if (key !== undefined) {
    const state = (sock as unknown as Record<symbol, unknown>)[key];
    if (typeof state === "object" && state !== null && "handle" in state) return state.handle;
  }
  return (sock as unknown as { _handle?: unknown })._handle;
}

/** libuv reports -1 or a negative errno (EBADF before bind) when there is no fd. */
function fdOf(handle: unknown): number | null {
  if (typeof handle !== "object" || handle === null) return null;
  const fd = (handle as HandleWithFd).fd;
  return typeof fd === "number" && Number.isInteger(fd) && fd >= 0 ? fd : null;
}
