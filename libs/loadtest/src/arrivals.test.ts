import { describe, expect, it } from "vitest";
import { caught } from "@switchyard/errors/testing";
import { arrivalSchedule, scheduleStats } from "./arrivals";

describe("arrival schedules", () => {
  it("poisson: the asked rate, exponential gaps (coefficient of variation 1)", () => {
    const s = arrivalSchedule({ kind: "poisson", rate: 50, durationS: 400, seed: 3 });
    const { rate, cv } = scheduleStats(s);
    expect(s.length).toBeGreaterThan(19_000);
    expect(Math.abs(rate - 50) / 50).toBeLessThan(0.03);
    expect(Math.abs(cv - 1)).toBeLessThan(0.05);
  });

  it("gamma: burstiness sets the dispersion (CV = 1/√burstiness) at the same rate", () => {
    for (const [b, want] of [[0.25, 2], [1, 1], [4, 0.5]] as const) {
      const { rate, cv } = scheduleStats(arrivalSchedule({ kind: "gamma", rate: 20, durationS: 1000, burstiness: b, seed: 5 }));
      expect(Math.abs(rate - 20) / 20, `rate at burstiness ${b}`).toBeLessThan(0.05);
      expect(Math.abs(cv - want) / want, `CV at burstiness ${b}: ${cv}`).toBeLessThan(0.08);
    }
  });

  it("constant: evenly spaced; seeded schedules repeat", () => {
    const s = arrivalSchedule({ kind: "constant", rate: 4, durationS: 10 });
    expect(s).toHaveLength(40);
    expect(scheduleStats(s).cv).toBeLessThan(1e-9);
    expect(arrivalSchedule({ kind: "poisson", rate: 5, durationS: 20, seed: 9 })).toEqual(arrivalSchedule({ kind: "poisson", rate: 5, durationS: 20, seed: 9 }));
    expect(arrivalSchedule({ kind: "poisson", rate: 5, durationS: 20, seed: 9 })).not.toEqual(arrivalSchedule({ kind: "poisson", rate: 5, durationS: 20, seed: 10 }));
    expect(arrivalSchedule({ kind: "constant", rate: 100, durationS: 10, maxRequests: 7 })).toHaveLength(7);
  });

  it("refuses bad input naming the field", () => {
    expect(caught(() => arrivalSchedule({ kind: "poisson", rate: 0, durationS: 1 })).field).toBe("rate");
    expect(caught(() => arrivalSchedule({ kind: "gamma", rate: 1, durationS: 1, burstiness: -1 })).rawMessage).toMatch(/^burstiness -1 must be > 0/);
    expect(caught(() => arrivalSchedule({ kind: "uniform" as "poisson", rate: 1, durationS: 1 })).field).toBe("arrival");
  });
});
