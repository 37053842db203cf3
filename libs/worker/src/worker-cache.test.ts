import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { parseExpertBudget } from "./worker-cache";

describe("expert budget", () => {
  it("reads all, percentages and byte sizes", () => {
    expect(parseExpertBudget("")).toBeUndefined();
    expect(parseExpertBudget("all")).toBeUndefined();
    expect(parseExpertBudget("50%")).toEqual({ fraction: 0.5 });
    expect(parseExpertBudget("100%")).toEqual({ fraction: 1 });
    expect(parseExpertBudget("4194304")).toEqual({ bytes: 4194304 });
    expect(parseExpertBudget("12MiB")).toEqual({ bytes: 12 * 1024 * 1024 });
    expect(parseExpertBudget("1.5 GB")).toEqual({ bytes: 1.5e9 });
  });

  it("rejects anything else, naming the setting and what is allowed", () => {
    for (const bad of ["0%", "150%", "-3", "12 parsecs", "lots", "0"]) {
      const e = caught(() => parseExpertBudget(bad));
      expect(e.code).toBe(Code.InvalidArgument);
      expect(e.message).toContain(`SWITCHYARD_EXPERT_BUDGET ${JSON.stringify(bad)} must be "all", a percentage in (0, 100] such as "50%", or a byte size such as "12MiB"`);
    }
  });
});
