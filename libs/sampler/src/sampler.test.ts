import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { advance, combineGuidance, evalsPerRun, guidanceAt, guidedEvals, initState, isDone, nextEval, nextEvalT, previewX0, timesteps, type SamplerName, type SamplerState } from "./sampler";
import { gaussianNoise } from "./noise";

/** Runs a sampler against an analytic velocity field and counts evals. */
function run(sampler: SamplerName, steps: number, v: (x: Float32Array, t: number) => Float32Array, x1: Float32Array) {
  let s: SamplerState = initState({ sampler, steps, shift: 1 }, x1);
  let completed = 0;
  while (!isDone(s)) {
    const p = nextEval(s);
    const r = advance(s, v(p.x, p.t));
    s = r.state;
    if (r.stepCompleted) completed++;
  }
  return { x: s.x, evals: s.evals, completed };
}

describe("timesteps", () => {
  it("runs from 1 to 0 and shifts toward noise", () => {
    expect(timesteps(4)).toEqual([1, 0.75, 0.5, 0.25, 0]);
    const sh = timesteps(4, 3);
    expect(sh[0]).toBe(1);
    expect(sh[4]).toBe(0);
    expect(sh[2]).toBeCloseTo((3 * 0.5) / (1 + 2 * 0.5));
  });
});

describe("samplers", () => {
  // Straight-line flow from x0 = 0.5 to noise: v = noise - x0 is constant, so every
  // sampler is exact.
  const x0 = 0.5;
  const noise = new Float32Array([1.5, -0.5]);
  const constV = () => Float32Array.from(noise, (n) => n - x0);

  it.each(["euler", "heun", "pc"] as const)("%s integrates a straight flow exactly", (name) => {
    const r = run(name, 10, constV, noise);
    expect(Array.from(r.x).map((a) => +a.toFixed(5))).toEqual([0.5, 0.5]);
    expect(r.evals).toBe(evalsPerRun({ sampler: name, steps: 10, shift: 1 }));
    expect(r.completed).toBe(10);
  });

  it("second-order samplers beat euler on a curved flow", () => {
    // dx/dt = x  =>  x(0) = x(1) * e^-1
    const v = (x: Float32Array) => Float32Array.from(x);
    const exact = Math.exp(-1);
    const err = (n: SamplerName) => Math.abs((run(n, 8, v, new Float32Array([1])).x[0] as number) - exact);
    expect(err("heun")).toBeLessThan(err("euler") / 10);
    expect(err("pc")).toBeLessThan(err("euler"));
    expect(run("pc", 8, v, new Float32Array([1])).evals).toBe(9);
    expect(run("heun", 8, v, new Float32Array([1])).evals).toBe(16);
  });

  it("is pure: advancing does not mutate the previous state", () => {
    const s = initState({ sampler: "euler", steps: 2, shift: 1 }, new Float32Array([1]));
    const before = s.x[0];
    advance(s, new Float32Array([3]));
    expect(s.x[0]).toBe(before);
    expect(s.step).toBe(0);
  });

  it("rejects bad parameters naming the field", () => {
    const bad = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return SwitchyardError.from(e);
      }
      throw new Error("no error");
    };
    expect(bad(() => initState({ sampler: "ddim" as SamplerName, steps: 2, shift: 1 }, new Float32Array(1))).field).toBe("sampler");
    expect(bad(() => initState({ sampler: "euler", steps: 0, shift: 1 }, new Float32Array(1))).message).toContain("steps 0");
    expect(bad(() => initState({ sampler: "euler", steps: 2, shift: 0 }, new Float32Array(1))).code).toBe(Code.InvalidArgument);
    const done = run("euler", 1, constV, noise);
    expect(done.completed).toBe(1);
  });

  it("combines guidance and previews x0", () => {
    expect(Array.from(combineGuidance(new Float32Array([2]), new Float32Array([1]), 3))).toEqual([4]);
    expect(Array.from(previewX0(new Float32Array([1]), 0.5, new Float32Array([2])))).toEqual([0]);
  });
});

describe("noise", () => {
  it("is deterministic per (seed, index) and roughly standard normal", () => {
    const a = gaussianNoise(1, 0, 10000);
    expect(gaussianNoise(1, 0, 10000)).toEqual(a);
    expect(gaussianNoise(1, 1, 16)).not.toEqual(gaussianNoise(1, 0, 16));
    expect(gaussianNoise(2, 0, 16)).not.toEqual(gaussianNoise(1, 0, 16));
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const varc = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(varc - 1)).toBeLessThan(0.05);
  });
});

describe("guidance intervals (#18)", () => {
  it("guide only evaluations at t inside the interval, and count them over a run", () => {
    expect(guidanceAt(2, 0.5, { tMin: 0.2, tMax: 0.8 })).toBe(2);
    expect(guidanceAt(2, 0.9, { tMin: 0.2, tMax: 0.8 })).toBe(1);
    expect(guidanceAt(2, 0.9)).toBe(2);
    // euler 8: t = 1, 0.875, …, 0.125 — five in [0.2, 0.8]
    expect(guidedEvals({ sampler: "euler", steps: 8, shift: 1 }, 2, { tMin: 0.2, tMax: 0.8 })).toBe(5);
    expect(guidedEvals({ sampler: "euler", steps: 8, shift: 1 }, 2)).toBe(8);
    expect(guidedEvals({ sampler: "euler", steps: 8, shift: 1 }, 1)).toBe(0);
    // heun 4: evaluations at (1, .75), (.75, .5), (.5, .25), (.25, 0) — five in [0.5, 1]
    expect(guidedEvals({ sampler: "heun", steps: 4, shift: 1 }, 3, { tMin: 0.5, tMax: 1 })).toBe(5);
    // nextEvalT is the t nextEval would use
    let s = initState({ sampler: "heun", steps: 4, shift: 1 }, new Float32Array(2));
    for (let i = 0; i < 8; i++) {
      expect(nextEvalT(s)).toBe(nextEval(s).t);
      s = advance(s, new Float32Array(2)).state;
    }
  });
});
