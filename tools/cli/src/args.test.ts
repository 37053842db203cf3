import { describe, expect, it } from "vitest";
import { num, parseFlags } from "./args";

describe("parseFlags", () => {
  it("reads values, = forms, booleans and negative numbers", () => {
    const { flags, positionals } = parseFlags(["--label", "-1", "--count=4", "--json", "--out", "x.png", "extra"]);
    expect(flags).toEqual({ label: "-1", count: "4", json: true, out: "x.png" });
    expect(positionals).toEqual(["extra"]);
    expect(num(flags, "label")).toBe(-1);
  });

  it("names the flag when a number is malformed", () => {
    expect(() => num({ steps: "ten" }, "steps")).toThrow('--steps "ten" must be a number');
    expect(() => num({ steps: true }, "steps")).toThrow("--steps true must be a number");
  });
});
