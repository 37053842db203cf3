import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { resolveGenerateParams } from "@switchyard/manifest";
import { gaussianNoise, initState, isDone } from "@switchyard/sampler";
import { type StepTask, createEngine } from "./engine";
import { generate } from "./generate";
import { type ReuseState, addForecastResidual, forecastFactor, probeDistance, stateFits } from "./residual-reuse";

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const meanAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;

describe("probeDistance", () => {
  // two rows of 2 floats; the item owns rows [1, 0]; probe = out - input = [3, -2, 1, 1]
  const out = Float32Array.from([2, 3, 3, -1]);
  const input = Float32Array.from([1, 2, 0, 1]);
  const last = { rows: 2, t: 0.6, probe: Float32Array.from([2, -2, 1, 1]), residual: new Float32Array(4) };

  it("is sum |(out - input) - ref| / sum |ref| over the item's rows, in the state's row order", () => {
    // the state's row 0 is compared with the probe's row 1
    expect(probeDistance(out, input, [1, 0], last, 0, 2)).toBeCloseTo((1 + 0 + 0 + 0) / 6);
    expect(probeDistance(out, input, [0], { ...last, rows: 1, probe: new Float32Array(2) }, 0, 2)).toBe(Number.POSITIVE_INFINITY);
  });

  it("compares with the probe forecast along the line through the last two evaluations", () => {
    const s = { ...last, previous: { t: 0.8, probe: Float32Array.from([0, -4, 1, 3]), residual: new Float32Array(4) } };
    // ref = last + k (last - previous) = [3, -1, 1, 0] at k = 0.5
    expect(probeDistance(out, input, [1, 0], s, 0.5, 2)).toBeCloseTo((0 + 1 + 0 + 1) / 5);
    expect(probeDistance(out, input, [1, 0], s, 0, 2)).toBeCloseTo(1 / 6); // k = 0: the last evaluation's probe
  });
});

describe("the forecast", () => {
  const snap = (t: number, v: number[]) => ({ t, probe: Float32Array.from(v), residual: Float32Array.from(v, (x) => 10 * x) });

  it("steps along the line in t: k = (t - t_last) / (t_last - t_previous); 0 without a previous evaluation or a slope", () => {
    const s: ReuseState = { rows: 1, ...snap(0.6, [1, 2]), previous: snap(0.8, [0, 0]) };
    expect(forecastFactor(s, 0.5)).toBeCloseTo(0.5);
    expect(forecastFactor(s, 0.6)).toBe(-0); // at the last evaluation's t: its own values
    expect(forecastFactor({ rows: 1, ...snap(0.6, [1, 2]) }, 0.5)).toBe(0);
    expect(forecastFactor({ ...s, previous: snap(0.6, [0, 0]) }, 0.5)).toBe(0); // heun: two evaluations at one t
  });

  it("adds the later blocks' residual forecast to the image's rows only, in the state's row order", () => {
    const s: ReuseState = { rows: 2, ...snap(0.6, [1, 2, 3, 4]), previous: snap(0.8, [0, 0, 1, 1]) }; // residual [10 20 30 40], previous [0 0 10 10]
    const target = Float32Array.from([1, 1, 1, 1, 1, 1]); // three rows of 2; the image owns rows [2, 0]
    addForecastResidual(target, [2, 0], s, 0.5, 2);
    // forecast = r + 0.5 (r - r_prev) = [15, 30, 40, 55]: rows 0.. of the state into rows 2, 0
    expect([...target]).toEqual([41, 56, 1, 1, 16, 31]);
  });

  it("needs every tensor at the image's shape (a state off the wire may not be)", () => {
    const s: ReuseState = { rows: 1, ...snap(0.6, [1, 2]), previous: snap(0.8, [0, 0]) };
    expect(stateFits(s, 1, 2)).toBe(true);
    expect(stateFits(undefined, 1, 2)).toBe(false);
    expect(stateFits(s, 2, 1)).toBe(false); // other rows
    expect(stateFits({ ...s, previous: snap(0.8, [0]) }, 1, 2)).toBe(false);
    expect(stateFits({ ...s, residual: new Float32Array(0) }, 1, 2)).toBe(false);
  });
});

/** #18: residual reuse per request (First-Block-Cache) in the engine. */
describe("residual reuse in the engine", () => {
  let parts: ModelParts;
  /** Rows each layer's dense part ran, summed over the calls. */
  let denseRows: number[];
  let counted: ModelParts;
  beforeAll(async () => {
    parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    denseRows = new Array(parts.manifest.architecture.numLayers).fill(0);
    counted = Object.assign(Object.create(parts) as ModelParts, {
      dense: (l: number, h: Float32Array, c: Float32Array, b: number) => ((denseRows[l]! += b), parts.dense(l, h, c, b)),
    });
  });
  afterAll(async () => parts?.close());
  const reset = () => denseRows.fill(0);

  it("asked for but never taken (threshold below every change) changes no bit and runs every row through every layer", async () => {
    const engine = createEngine({ parts: counted });
    const m = parts.manifest;
    const base = { label: 5, count: 3, steps: 8, sampler: "euler", guidance: 2, seed: 11 };
    reset();
    const plain = await generate(engine, resolveGenerateParams(base, m));
    const plainRows = [...denseRows];
    reset();
    const asked = await generate(engine, resolveGenerateParams({ ...base, reuse_threshold: 1e-9 }, m));
    expect(asked.reusedEvals).toBe(0);
    asked.images.forEach((x, i) => expect(same(x, plain.images[i]!), `image ${i}`).toBe(true));
    expect(denseRows).toEqual(plainRows);
  });

  it("a reused evaluation runs only the first block for its rows; the images stay close to uncached", async () => {
    const engine = createEngine({ parts: counted });
    const m = parts.manifest;
    const base = { label: 3, count: 4, steps: 20, sampler: "euler", guidance: 2, seed: 4 };
    reset();
    const plain = await generate(engine, resolveGenerateParams(base, m));
    reset();
    const reused = await generate(engine, resolveGenerateParams({ ...base, reuse_threshold: 0.2 }, m));
    const L = m.architecture.numLayers;
    const full = 4 * 20 - reused.reusedEvals;
    expect(reused.reusedEvals).toBeGreaterThan(10);
    expect(reused.reusedEvals).toBeLessThan(70); // the first evaluation of every image is full, and drift forces more
    // two rows (CFG) per evaluation: every evaluation through layer 0, only full ones through the rest
    expect(denseRows[0]).toBe(2 * 4 * 20);
    for (let l = 1; l < L; l++) expect(denseRows[l], `layer ${l}`).toBe(2 * full);
    reused.images.forEach((x, i) => {
      expect(same(x, plain.images[i]!)).toBe(false);
      // pixels in [-1, 1]; measured 0.02-0.04 (quality over many images: npm run bench:reuse)
      expect(meanAbsDiff(x, plain.images[i]!), `image ${i}`).toBeLessThan(0.1);
    });
  });

  it("evaluating the same point twice reuses (distance 0) and gives the full evaluation's velocity to float rounding", async () => {
    const engine = createEngine({ parts });
    const x = gaussianNoise(2, 0, 784);
    const first = await engine.forward([{ x, t: 0.6, label: 1, guidance: 2, reuse: { threshold: 0.05 } }]);
    const o = first.reuse![0]!;
    expect(o.reused).toBe(false);
    expect(Number.isNaN(o.distance)).toBe(true);
    expect(o.state.rows).toBe(2);
    const again = await engine.forward([{ x, t: 0.6, label: 1, guidance: 2, reuse: { threshold: 0.05, state: o.state } }]);
    expect(again.reuse![0]!.reused).toBe(true);
    expect(again.reuse![0]!.distance).toBe(0);
    expect(again.reuse![0]!.state).toBe(o.state);
    expect(maxAbsDiff(again.velocities[0]!, first.velocities[0]!)).toBeLessThan(1e-4);
    // its skipped layers route nowhere
    expect(again.routing[1]!.experts.every((e) => e === -1)).toBe(true);
    expect(again.routing[0]!.experts.every((e) => e >= 0)).toBe(true);
    // a state for another number of rows (unguided now) is not used
    const unguided = await engine.forward([{ x, t: 0.6, label: 1, guidance: 1, reuse: { threshold: 0.05, state: o.state } }]);
    expect(unguided.reuse![0]!.reused).toBe(false);
  });

  it("a second full evaluation keeps the first as its previous; a reused one adds the residual forecast between them", async () => {
    const engine = createEngine({ parts });
    const x = gaussianNoise(5, 0, 784);
    const at = (t: number, reuse?: { threshold: number; state?: ReuseState }) => engine.forward([{ x, t, label: 2, guidance: 2, ...(reuse ? { reuse } : {}) }]);
    const s1 = (await at(0.8, { threshold: 1e-9 })).reuse![0]!.state;
    expect(s1.previous).toBeUndefined();
    const second = (await at(0.6, { threshold: 1e-9, state: s1 })).reuse![0]!;
    expect(second.reused).toBe(false);
    expect(second.state.t).toBe(Math.fround(0.6)); // as the model saw it
    expect(second.state.previous).toEqual({ t: Math.fround(0.8), probe: s1.probe, residual: s1.residual });
    expect(second.state.previous!.residual).toBe(s1.residual); // the same arrays, not copies
    const s2 = second.state;
    // at t = 0.7, between the two: the forecast is nearer the full evaluation than the last residual alone
    const truth = (await at(0.7)).velocities[0]!;
    const forecast = await at(0.7, { threshold: 10, state: s2 });
    const plain = await at(0.7, { threshold: 10, state: { rows: s2.rows, t: s2.t, probe: s2.probe, residual: s2.residual } });
    expect(forecast.reuse![0]!.reused).toBe(true);
    expect(plain.reuse![0]!.reused).toBe(true);
    // (measured: mean |error| 0.162 against 0.333)
    expect(meanAbsDiff(forecast.velocities[0]!, truth)).toBeLessThan(0.75 * meanAbsDiff(plain.velocities[0]!, truth));
    // a flat line (the previous evaluation equal to the last) forecasts the last residual: bitwise plain reuse
    const flat = await at(0.7, { threshold: 10, state: { ...s2, previous: { t: 0.8, probe: s2.probe, residual: s2.residual } } });
    expect(same(flat.velocities[0]!, plain.velocities[0]!)).toBe(true);
  });

  it("gives each request of a mixed batch (thresholds, none, unguided; euler, heun, pc) the result it gets alone", async () => {
    const engine = createEngine({ parts, maxBatchRows: 5 }); // chunks split the batch, never an image's rows
    const P = 784;
    const specs: { task: Omit<StepTask, "state" | "reuse">; threshold?: number; sampler: "euler" | "heun" | "pc" }[] = [
      { task: { label: 1, guidance: 2 }, threshold: 0.2, sampler: "euler" },
      { task: { label: 2, guidance: 2 }, sampler: "euler" },
      { task: { label: 3, guidance: 3, guidanceInterval: { tMin: 0.3, tMax: 0.9 } }, threshold: 0.1, sampler: "heun" },
      { task: { label: 10, guidance: 1 }, threshold: 0.3, sampler: "euler" },
      { task: { label: 6, guidance: 2 }, threshold: 0.25, sampler: "pc" },
    ];
    const run = async (which: number[]) => {
      const states = which.map((i) => initState({ sampler: specs[i]!.sampler, steps: 8, shift: 1 }, gaussianNoise(21, i, P)));
      const reuse: (ReuseState | undefined)[] = which.map(() => undefined);
      let reused = 0;
      while (!states.every(isDone)) {
        const live = which.map((_, k) => k).filter((k) => !isDone(states[k]!));
        const r = await engine.step(live.map((k) => {
          const s = specs[which[k]!]!;
          return { ...s.task, state: states[k]!, ...(s.threshold ? { reuse: { threshold: s.threshold, ...(reuse[k] ? { state: reuse[k] } : {}) } } : {}) };
        }));
        live.forEach((k, j) => {
          states[k] = r[j]!.state;
          if (r[j]!.reuse) {
            reuse[k] = r[j]!.reuse!.state;
            if (r[j]!.reuse!.reused) reused++;
          }
        });
      }
      return { images: states.map((s) => s.x), reused };
    };
    const together = await run(specs.map((_, i) => i));
    expect(together.reused).toBeGreaterThan(0);
    for (let i = 0; i < specs.length; i++) {
      const alone = await run([i]);
      expect(same(alone.images[0]!, together.images[i]!), `request ${i}`).toBe(true);
    }
  });
});
