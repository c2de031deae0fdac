import { GatewayError } from "./errors.js";

// A fault rule in one word, `DIRECTION:CLASS[+CLASS...]:ACTION[=ARG][,KEY=VALUE...]`
// (`toasim up --fault`, and a string in any list of rules), turned into the
// plain object that parseFaultRule reads, so both forms mean the same.

/** The shorthand argument of each action (`delay=200` is `delay, ms=200`). */
const SHORTHAND = {
  duplicate: "copies",
  delay: "ms",
  reorder: "after",
  corrupt: "field",
  truncate: "to",
} as const;

function bad(where: string, message: string): never {
  throw new GatewayError("BAD_FAULT", `${where}: ${message}`);
}

export function faultSpecToRule(spec: string, where: string): Record<string, unknown> {
  const [head = "", ...keys] = spec.split(",");
  const parts = head.split(":");
  if (parts.length < 3) {
    bad(
      where,
      `"${spec}" is not DIRECTION:CLASS:ACTION[=ARG][,KEY=VALUE...] (e.g. to-server:handshake-ack:drop,count=1)`,
    );
  }
  const [direction, cls] = parts as [string, string];
  const actionWord = parts.slice(2).join(":");
  const eq = actionWord.indexOf("=");
  const action = eq < 0 ? actionWord : actionWord.slice(0, eq);
  const rule: Record<string, unknown> = {
    direction,
    class: cls.includes("+") ? cls.split("+") : cls,
    action,
  };
  if (eq >= 0) {
    const key = SHORTHAND[action as keyof typeof SHORTHAND];
    if (key === undefined) bad(where, `"${spec}": action ${action} takes no =ARG`);
    rule[key] = specValue(actionWord.slice(eq + 1));
  }
  for (const kv of keys) {
    const i = kv.indexOf("=");
    if (i <= 0) bad(where, `"${spec}": "${kv}" is not KEY=VALUE`);
    rule[kv.slice(0, i)] = specValue(kv.slice(i + 1));
  }
  return rule;
}

/** A value as written in a spec: numbers (decimal, 0x, fractions) become numbers. */
export function specValue(text: string): unknown {
  if (/^(0|[1-9]\d*)$/.test(text) || /^0x[0-9a-fA-F]+$/.test(text)) return Number(text);
  if (/^\d*\.\d+$/.test(text)) return Number(text);
  return text;
}
