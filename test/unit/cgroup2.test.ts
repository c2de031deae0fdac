import { describe, expect, it } from "vitest";
import { cgroup2Mounts, cgroup2Root } from "../../src/cgroup2.js";

// mountinfo lines as the kernel writes them (proc(5)): optional fields before " - ".
const UNIFIED =
  "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
const HYBRID = [
  "25 24 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755",
  "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw",
  "27 25 0:24 / /sys/fs/cgroup/cpu rw,nosuid shared:11 - cgroup cgroup rw,cpu",
].join("\n");
const ELSEWHERE_FIRST = [
  "40 24 0:40 / /run/my\\040runtime/cg rw master:3 - cgroup2 none rw",
  "35 24 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw",
].join("\n");

describe("the cgroup2 mount", () => {
  it("is found on unified and hybrid hosts", () => {
    expect(cgroup2Root(UNIFIED)).toBe("/sys/fs/cgroup");
    expect(cgroup2Root(HYBRID)).toBe("/sys/fs/cgroup/unified");
  });

  it("prefers a mount under /sys/fs/cgroup, unescapes octal escapes, and is null without one", () => {
    expect(cgroup2Mounts(ELSEWHERE_FIRST)).toEqual(["/run/my runtime/cg", "/sys/fs/cgroup"]);
    expect(cgroup2Root(ELSEWHERE_FIRST)).toBe("/sys/fs/cgroup");
    expect(cgroup2Root(ELSEWHERE_FIRST.split("\n")[0])).toBe("/run/my runtime/cg");
    expect(cgroup2Root(HYBRID.split("\n")[2])).toBeNull();
    expect(cgroup2Root("")).toBeNull();
  });
});
