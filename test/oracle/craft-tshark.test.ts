import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { commandMissing, describeTier } from "../helpers/tier.js";
import { type Row, tshark as tsharkFields } from "../helpers/tshark.js";

// Tier 2: pcaps written by `toasim craft` are read by tshark, a decoder
// nobody here wrote. Expected carriers are written out below from
// DIALECTS.md, and the expected option bytes are built by hand here, not
// by the codecs under test.

const tsharkMissing = commandMissing("tshark");
const dir = mkdtempSync(join(tmpdir(), "toasim-oracle-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CLIENT4 = { text: "198.51.100.7:40000", addr: [198, 51, 100, 7], port: 40000 };
const CLIENT6 = {
  text: "[2001:db8:c::7]:40001",
  addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
  port: 40001,
};

type Family = "v4" | "v6" | "nat64";
const FAMILY_FLAGS: Record<Family, string[]> = {
  v4: ["--client", CLIENT4.text, "--vip", "203.0.113.10:80", "--rs", "192.0.2.10:8080"],
  v6: ["--client", CLIENT6.text, "--vip", "[2001:db8:f::10]:80", "--rs", "[2001:db8:5::10]:8080"],
  nat64: ["--client", CLIENT6.text, "--vip", "[2001:db8:f::10]:80", "--rs", "192.0.2.10:8080"],
};

const hex = (xs: number[]) => xs.map((x) => x.toString(16).padStart(2, "0")).join("");
const be16 = (n: number) => [n >> 8, n & 0xff];

/** The TOA bytes each dialect puts on the wire, from DIALECTS.md. */
function expectedToa(profile: string, family: Family): string {
  const c = family === "v4" ? CLIENT4 : CLIENT6;
  const v6 = c.addr.length === 16;
  switch (profile) {
    case "dpvs":
    case "noa":
    case "bytedance":
      return hex([254, v6 ? 20 : 8, ...be16(c.port), ...c.addr]);
    case "lvs":
      return hex([v6 ? 253 : 254, v6 ? 20 : 8, ...be16(c.port), ...c.addr]);
    case "tencent":
      return hex([v6 ? 253 : 200, v6 ? 20 : 8, ...be16(c.port), ...c.addr]);
    case "ucloud":
      return hex([200, 8, ...be16(c.port), ...c.addr]);
    case "ksyun-ttm": {
      const addr16 = [...c.addr, ...new Array(16 - c.addr.length).fill(0)];
      return hex([254, 22, v6 ? 10 : 2, 0, ...be16(c.port), ...addr16]);
    }
    case "aliyun-cdn":
      return hex([28, v6 ? 19 : 7, v6 ? 2 : 1, ...c.addr]);
    default:
      throw new Error(profile);
  }
}

/** Which server-side packets carry the TOA in the crafted exchange. */
const TOA_CARRIERS: Record<string, string[]> = {
  dpvs: ["handshake ACK", "request"],
  lvs: ["SYN", "handshake ACK", "request"],
  tencent: ["handshake ACK"],
  "ksyun-ttm": ["handshake ACK"],
  noa: ["handshake ACK"],
  bytedance: ["handshake ACK"],
  ucloud: ["handshake ACK"],
  "aliyun-cdn": ["SYN"],
};
const MSS_LOWERED = new Set(["dpvs", "lvs", "tencent", "ksyun-ttm", "noa", "bytedance", "ucloud"]);

const FIELDS = [
  "frame.number",
  "ip.checksum.status",
  "tcp.checksum.status",
  "udp.checksum.status",
  "ip.proto",
  "ipv6.nxt",
  "ip.hdr_len",
  "tcp.flags.syn",
  "tcp.flags.fin",
  "tcp.len",
  "tcp.option_kind",
  "tcp.options.experimental",
  "tcp.options.unknown",
  "tcp.options.user_to",
  "tcp.options.mss_val",
  "data.data",
  "udp.payload",
  "proxy.src.ipv4",
  "proxy.src.ipv6",
  "proxy.srcport",
  "_ws.malformed",
];

function tshark(file: string, filter?: string): Row[] {
  return tsharkFields(file, FIELDS, filter);
}

interface CraftRow {
  frame: number;
  side: string;
  direction: string;
  packet: string;
  carrier: string;
}

async function craft(name: string, flags: string[]): Promise<{ file: string; rows: CraftRow[] }> {
  const file = join(dir, `${name}.pcap`);
  let out = "";
  let err = "";
  const code = await main(["craft", ...flags, "--out", file, "--json"], {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
  });
  expect(err).toBe("");
  expect(code).toBe(0);
  return { file, rows: (JSON.parse(out) as { packets: CraftRow[] }).packets };
}

function expectChecksumsGood(rows: Row[], family: Family | "v4-server"): void {
  for (const r of rows) {
    const where = `frame ${r["frame.number"]}`;
    if (family === "v4" || family === "nat64" || family === "v4-server")
      expect(r["ip.checksum.status"], where).toBe("1");
    if (r["ip.proto"] === "6" || r["ipv6.nxt"] === "6")
      expect(r["tcp.checksum.status"], where).toBe("1");
    if (r["ip.proto"] === "17" || r["ipv6.nxt"] === "17")
      expect(r["udp.checksum.status"], where).toBe("1");
    expect(r["_ws.malformed"], where).toBe("");
  }
}

/** The whole raw option field tshark shows for this TOA kind. */
function toaField(r: Row, kind: number): string {
  if (kind === 253 || kind === 254) return r["tcp.options.experimental"] ?? "";
  if (kind === 28) return r["tcp.options.user_to"] ?? "";
  return r["tcp.options.unknown"] ?? "";
}

describeTier("oracle", tsharkMissing, "tshark reads toasim craft pcaps", () => {
  const toaProfiles = Object.keys(TOA_CARRIERS);
  for (const profile of toaProfiles) {
    for (const family of ["v4", "v6", "nat64"] as const) {
      if (profile === "ucloud" && family !== "v4") continue;
      it(`${profile} TCP ${family}: TOA bytes on exactly the profile's packets`, async () => {
        const { file, rows } = await craft(`${profile}-${family}`, [
          "--profile",
          profile,
          ...FAMILY_FLAGS[family],
        ]);
        const ts = tshark(file);
        expect(ts.length).toBe(rows.length);
        expectChecksumsGood(ts, family);
        const want = expectedToa(profile, family);
        const kind = Number.parseInt(want.slice(0, 2), 16);
        for (const [i, row] of rows.entries()) {
          const r = ts[i]!;
          const carries =
            row.direction === "to-server" && TOA_CARRIERS[profile]!.includes(row.packet);
          const kinds = (r["tcp.option_kind"] ?? "").split("|");
          const where = `${profile} ${family} frame ${i + 1} (${row.packet})`;
          if (carries) {
            expect(kinds[0], where).toBe(String(kind));
            expect(toaField(r, kind).split("|"), where).toContain(want);
            expect(row.carrier, where).toBe("carrier");
          } else {
            expect(kinds, where).not.toContain(String(kind));
            expect(row.carrier, where).toBe("");
          }
          // The client's SYN timestamps become NOPs in DPVS only.
          if (row.packet === "SYN") expect(kinds.includes("8"), where).toBe(profile !== "dpvs");
        }
      });
    }
  }

  for (const profile of Object.keys(TOA_CARRIERS)) {
    it(`${profile}: the client sees the MSS lowered by the TOA length${MSS_LOWERED.has(profile) ? "" : " (not for this profile)"}`, async () => {
      const { file, rows } = await craft(`${profile}-client`, [
        "--profile",
        profile,
        ...FAMILY_FLAGS.v4,
        "--side",
        "client",
      ]);
      const ts = tshark(file);
      expectChecksumsGood(ts, "v4");
      const synAck = rows.findIndex((r) => r.packet === "SYN-ACK");
      const toaLen = expectedToa(profile, "v4").length / 2;
      expect(ts[synAck]!["tcp.options.mss_val"]).toBe(
        String(MSS_LOWERED.has(profile) ? 1460 - toaLen : 1460),
      );
    });
  }

  for (const family of ["v4", "v6", "nat64"] as const) {
    it(`UOA opp ${family}: protocol 248 with the private header on the first 3 of 4 datagrams`, async () => {
      const { file, rows } = await craft(`opp-${family}`, [
        "--profile",
        "dpvs",
        "--proto",
        "udp",
        "--uoa",
        "opp",
        ...FAMILY_FLAGS[family],
      ]);
      const ts = tshark(file);
      expectChecksumsGood(ts, family);
      const c = family === "v4" ? CLIENT4 : CLIENT6;
      const v6c = c.addr.length === 16;
      const optLen = v6c ? 20 : 8;
      const header = hex([
        (v6c ? 2 : 1) << 4,
        17,
        ...be16(4 + optLen),
        0x1f,
        optLen,
        ...be16(c.port),
        ...c.addr,
      ]);
      let carried = 0;
      for (const [i, row] of rows.entries()) {
        const r = ts[i]!;
        const proto = r["ip.proto"] || r["ipv6.nxt"];
        const where = `frame ${i + 1} (${row.packet})`;
        if (row.direction === "to-server" && carried < 3) {
          carried++;
          expect(proto, where).toBe("248");
          expect(r["data.data"]!.startsWith(header), where).toBe(true);
          // Behind the private header: the UDP header, then the payload intact.
          const inner = r["data.data"]!.slice(header.length + 16);
          expect(Buffer.from(inner, "hex").toString(), where).toBe(
            `query ${i / 2 + 1} from ${c.port}\n`,
          );
        } else {
          expect(proto, where).toBe("17");
        }
      }
      expect(carried).toBe(3);
    });
  }

  it("UOA ipo v4: option 31 in the IP header of the first 3 datagrams", async () => {
    const { file, rows } = await craft("ipo", [
      "--profile",
      "dpvs",
      "--proto",
      "udp",
      "--uoa",
      "ipo",
      ...FAMILY_FLAGS.v4,
    ]);
    const opt = hex([0x1f, 8, ...be16(CLIENT4.port), ...CLIENT4.addr]);
    const ts = tshark(file);
    expectChecksumsGood(ts, "v4");
    // tshark names no field for an unknown IP option: match the header bytes with a slice filter.
    const slice = opt.match(/../g)!.join(":");
    const withOption = tshark(file, `ip.hdr_len == 28 && ip[20:8] == ${slice}`).map((r) =>
      Number(r["frame.number"]),
    );
    const expected = rows
      .filter((r) => r.direction === "to-server")
      .slice(0, 3)
      .map((r) => r.frame);
    expect(withOption).toEqual(expected);
    for (const r of ts) expect(r["ip.proto"]).toBe("17");
  });

  it("custom: kind 200 on every client packet, SYN included, v4 and NAT64", async () => {
    for (const family of ["v4", "nat64"] as const) {
      const flags = ["--profile", "custom", "--toa-kind", "200", "--carry", "syn,every"];
      const { file, rows } = await craft(`custom-${family}`, [...flags, ...FAMILY_FLAGS[family]]);
      const ts = tshark(file);
      expectChecksumsGood(ts, family);
      const c = family === "v4" ? CLIENT4 : CLIENT6;
      const want = hex([200, c.addr.length + 4, ...be16(c.port), ...c.addr]);
      for (const [i, row] of rows.entries()) {
        const toServer = row.direction === "to-server";
        expect(ts[i]!["tcp.options.unknown"] === want, `${family} frame ${i + 1}`).toBe(toServer);
      }
    }
  });

  it("SPP: every client datagram starts with the 38-byte header", async () => {
    const { file, rows } = await craft("spp", [
      "--profile",
      "spp",
      "--proto",
      "udp",
      ...FAMILY_FLAGS.v4,
    ]);
    const ts = tshark(file);
    expectChecksumsGood(ts, "v4");
    const mapped = [...new Array(10).fill(0), 0xff, 0xff, ...CLIENT4.addr];
    const vip = [...new Array(10).fill(0), 0xff, 0xff, 203, 0, 113, 10];
    const spp = hex([0x56, 0xec, ...mapped, ...vip, ...be16(CLIENT4.port), ...be16(80)]);
    for (const [i, row] of rows.entries()) {
      const payload = ts[i]!["udp.payload"] || ts[i]!["data.data"] || "";
      expect(payload.startsWith(spp), `frame ${i + 1}`).toBe(row.direction === "to-server");
    }
  });

  for (const profile of ["proxy-v1", "proxy-v2"]) {
    for (const family of ["v4", "v6", "nat64"] as const) {
      it(`${profile} ${family}: tshark's PROXY dissector reads the client from the first payload`, async () => {
        const { file, rows } = await craft(`${profile}-${family}`, [
          "--profile",
          profile,
          ...FAMILY_FLAGS[family],
        ]);
        const ts = tshark(file);
        expectChecksumsGood(ts, family);
        const c = family === "v4" ? CLIENT4 : CLIENT6;
        const i = rows.findIndex((r) => r.packet === "request");
        const r = ts[i]!;
        const src = c.addr.length === 4 ? r["proxy.src.ipv4"] : r["proxy.src.ipv6"];
        expect(src).toBe(family === "v4" ? "198.51.100.7" : "2001:db8:c::7");
        expect(r["proxy.srcport"]).toBe(String(c.port));
        const others = ts.filter((_, j) => j !== i);
        for (const o of others) expect(o["proxy.srcport"]).toBe("");
      });
    }
  }

  it("proxy-v2 UDP: only the first datagram carries the header", async () => {
    const { file, rows } = await craft("proxy-v2-udp", [
      "--profile",
      "proxy-v2",
      "--proto",
      "udp",
      ...FAMILY_FLAGS.v4,
    ]);
    const ts = tshark(file);
    expectChecksumsGood(ts, "v4");
    const first = rows.findIndex((r) => r.direction === "to-server");
    ts.forEach((r, i) => {
      expect(r["proxy.srcport"], `frame ${i + 1}`).toBe(i === first ? String(CLIENT4.port) : "");
    });
  });
});
