import { describe, expect, it } from "vitest";
import { guidanceIntervalFlag } from "./commands/generate";

describe("--guidance-interval", () => {
  it("reads LO:HI into the two request parameters, and names itself when malformed", () => {
    expect(guidanceIntervalFlag({})).toEqual({});
    expect(guidanceIntervalFlag({ "guidance-interval": "0.2:0.8" })).toEqual({ guidance_t_min: 0.2, guidance_t_max: 0.8 });
    expect(() => guidanceIntervalFlag({ "guidance-interval": "0.2-0.8" })).toThrow('--guidance-interval "0.2-0.8" must be LO:HI with numbers in [0, 1] and LO <= HI, e.g. 0.2:0.8');
    expect(() => guidanceIntervalFlag({ "guidance-interval": "0.8:0.2" })).toThrow(/LO <= HI/);
  });
});
