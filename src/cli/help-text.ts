import type { Io } from "./io.js";

/** The width help is wrapped to: the terminal's, or 80. */
export function helpWidth(io: Io): number {
  return io.columns ?? process.stdout.columns ?? 80;
}

/** Words of `text` in lines of at most `width` characters (a longer word stands alone). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

/**
 * A titled list of terms and their descriptions for the text after a
 * command's help, wrapped to `width` with the descriptions aligned (the
 * text after the options is printed as it is, so it is wrapped here).
 */
export function helpList(
  title: string,
  items: readonly (readonly [string, string])[],
  width: number,
): string {
  const termWidth = Math.max(...items.map(([t]) => t.length));
  const indent = 2 + termWidth + 2;
  const room = Math.max(30, width - indent);
  const out = [`${title}:`];
  for (const [term, text] of items) {
    const lines = wrap(text, room);
    out.push(`  ${term.padEnd(termWidth)}  ${lines[0] ?? ""}`);
    for (const l of lines.slice(1)) out.push(`${" ".repeat(indent)}${l}`);
  }
  return out.join("\n");
}

/** A paragraph for the text after a command's help, wrapped to `width`. */
export function helpParagraph(text: string, width: number): string {
  return wrap(text, width).join("\n");
}
