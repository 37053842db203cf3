import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import fc from "fast-check";
import { Code, SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { resolveGenerateParams } from "@switchyard/manifest";
import { gaussianNoise } from "@switchyard/sampler";
import { type Engine, type EvalItem, type ForwardResult, createEngine } from "./engine";
import { generate } from "./generate";
import { type Lane, type LaneEngine, createLaneEngine, laneCuts, startLaneThread } from "./lanes";

const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => Object.is(v, b[i]));

function expectSameForward(got: ForwardResult, want: ForwardResult) {
  expect(got.rows).toEqual(want.rows);
  expect(got.velocities.length).toBe(want.velocities.length);
  got.velocities.forEach((v, i) => expect(same(v, want.velocities[i]!), `velocity ${i}`).toBe(true));
  expect(got.routing.length).toBe(want.routing.length);
  got.routing.forEach((lr, l) => {
    expect(lr.rows, `layer ${l} rows`).toBe(want.routing[l]!.rows);
    expect(same(lr.experts, want.routing[l]!.experts), `layer ${l} experts`).toBe(true);
    expect(same(lr.weights, want.routing[l]!.weights), `layer ${l} weights`).toBe(true);
  });
}

describe("laneCuts", () => {
  it("cuts into contiguous, non-empty groups of about equal rows, each of at least the minimum", () => {
    expect(laneCuts([2, 2, 2, 2], 2, 3)).toEqual([0, 2, 4]);
    expect(laneCuts([2, 2, 2, 2], 4, 3)).toEqual([0, 2, 4]); // 8 rows: at most floor(8 / 3) = 2 groups
    expect(laneCuts([2, 1, 1, 2, 2], 2, 3)).toEqual([0, 3, 5]);
    expect(laneCuts([2], 4, 1)).toEqual([0, 1]);
    expect(laneCuts([2, 2], 2, 3)).toEqual([0, 2]); // 4 rows: one group
    expect(laneCuts([], 2, 3)).toEqual([0, 0]);
  });

  it("never makes an empty group or more groups than lanes, and covers every item in order", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 2 }), { maxLength: 80 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 20 }), (rows, lanes, minRows) => {
        const cuts = laneCuts(rows, lanes, minRows);
        expect(cuts[0]).toBe(0);
        expect(cuts[cuts.length - 1]).toBe(rows.length);
        expect(cuts.length - 1).toBeLessThanOrEqual(Math.max(1, lanes));
        for (let g = 1; g < cuts.length; g++) if (rows.length > 0) expect(cuts[g]!).toBeGreaterThan(cuts[g - 1]!);
        const total = rows.reduce((a, b) => a + b, 0);
        if (cuts.length > 2) for (let g = 1; g < cuts.length; g++) expect(rows.slice(cuts[g - 1], cuts[g]).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(Math.min(minRows, total) - 1);
      }),
    );
  });
});

describe("the engine on lanes", () => {
  let parts: ModelParts;
  let one: Engine;
  let lanes: LaneEngine;
  beforeAll(async () => {
    parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    one = createEngine({ parts });
    lanes = await createLaneEngine({ dir: BUNDLED_MODEL_DIR, lanes: 3 });
  });
  afterAll(async () => {
    await lanes?.close();
    await parts?.close();
  });
  const P = 28 * 28;
  /** Items with and without guidance (one row or two), labels and times mixed. */
  const batch = (n: number, seed: number): EvalItem[] =>
    Array.from({ length: n }, (_, i) => ({ x: gaussianNoise(seed, i, P), t: 0.05 + (0.9 * ((i * 7 + seed) % 11)) / 10, label: (i + seed) % 11, guidance: i % 3 === 1 ? 1 : 2 }));

  it("gives bitwise one engine's velocities, routing and rows at every batch size", async () => {
    expect(lanes.lanes).toBe(3);
    for (const n of [1, 2, 3, 5, 8, 17, 32]) expectSameForward(await lanes.forward(batch(n, n)), await one.forward(batch(n, n)));
    // Forwards called at once run their calling-thread groups one after the other.
    const [a, b] = await Promise.all([lanes.forward(batch(12, 40)), lanes.forward(batch(9, 41))]);
    expectSameForward(a, await one.forward(batch(12, 40)));
    expectSameForward(b, await one.forward(batch(9, 41)));
  });

  it("gives bitwise one engine's images with residual reuse, its state carried between steps", async () => {
    const m = parts.manifest;
    const params = resolveGenerateParams({ label: 4, count: 6, steps: 12, sampler: "euler", guidance: 2, seed: 3, reuse_threshold: 0.15 }, m);
    const a = await generate(lanes, params);
    const b = await generate(one, params);
    expect(a.reusedEvals).toBe(b.reusedEvals);
    expect(a.reusedEvals).toBeGreaterThan(0); // the test covers reuse taken, not only asked for
    a.images.forEach((x, i) => expect(same(x, b.images[i]!), `image ${i}`).toBe(true));
  });

  it("names the batch's own item in a bad input's error", async () => {
    const items = batch(8, 1);
    items[6] = { ...items[6]!, label: 99 };
    await expect(lanes.forward(items)).rejects.toThrow(/items\[6\]\.label 99 must be an integer >= 0 and <= 10/);
  });

  it("refuses bad options, naming the field", async () => {
    const e = await createLaneEngine({ dir: BUNDLED_MODEL_DIR, lanes: 0 }).catch((x: unknown) => x);
    expect((e as SwitchyardError).field).toBe("lanes");
    expect((e as Error).message).toMatch(/lanes 0 must be an integer from 1 to 64/);
    const f = await createLaneEngine({ dir: BUNDLED_MODEL_DIR, minRowsPerLane: 0 }).catch((x: unknown) => x);
    expect((f as SwitchyardError).field).toBe("minRowsPerLane");
  });

  it("runs a dead lane's share on the calling thread, with a warning, and drops the lane", async () => {
    // A real lane that dies (UNAVAILABLE, as a crashed thread) on its second forward.
    let forwards = 0;
    let alive = true;
    const dying = async (o: Parameters<typeof startLaneThread>[0]): Promise<Lane> => {
      const real = await startLaneThread(o);
      return {
        forward: (items) => (++forwards === 2 ? ((alive = false), Promise.reject(new SwitchyardError("an engine lane exited (code 1)", Code.Unavailable))) : real.forward(items)),
        get alive() {
          return alive && real.alive;
        },
        close: () => real.close(),
      };
    };
    const engine = await createLaneEngine({ dir: BUNDLED_MODEL_DIR, lanes: 2, startLane: dying });
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    try {
      for (let k = 0; k < 3; k++) expectSameForward(await engine.forward(batch(8, 20 + k)), await one.forward(batch(8, 20 + k)));
      expect(forwards).toBe(2); // the third forward did not try the dead lane
      expect(engine.lanes).toBe(1);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/exited \(code 1\); its share of the batch runs on the calling thread/);
    } finally {
      warn.mockRestore();
      await engine.close();
    }
  });
});
