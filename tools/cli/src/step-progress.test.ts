import { describe, expect, it } from "vitest";
import { stepProgress } from "./commands/generate";

const sink = (isTTY: boolean) => {
  const written: string[] = [];
  return { isTTY, written, write: (s: string) => written.push(s) };
};

describe("generate's step progress", () => {
  it("rewrites one line in place on a terminal and ends it", () => {
    const out = sink(true);
    const p = stepProgress(out);
    for (let k = 1; k <= 3; k++) p.step(k, 3);
    p.end();
    expect(out.written.join("")).toBe("\rstep 1/3\rstep 2/3\rstep 3/3\n");
  });

  it("writes nothing into a pipe or a log file (the lines would run together)", () => {
    const out = sink(false);
    const p = stepProgress(out);
    p.step(1, 2);
    p.step(2, 2);
    p.end();
    expect(out.written).toEqual([]);
  });
});
