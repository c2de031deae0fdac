/**
 * The gateway layer's one error type: a configuration it cannot run
 * (BAD_CONFIG) or a fault rule it cannot apply (BAD_FAULT). Packets never
 * raise it: a bad packet is dropped and counted.
 */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  constructor(
    readonly code: "BAD_CONFIG" | "BAD_FAULT",
    message: string,
  ) {
    super(message);
  }
}
