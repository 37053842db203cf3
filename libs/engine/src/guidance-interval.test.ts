import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { resolveGenerateParams } from "@switchyard/manifest";
import { gaussianNoise, initState, isDone, timesteps } from "@switchyard/sampler";
import { type StepTask, createEngine } from "./engine";
import { generate } from "./generate";

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** #18: classifier-free guidance only on part of the trajectory, per request. */
describe("guidance intervals in the engine", () => {
  let parts: ModelParts;
  let rows = 0;
  let counted: ModelParts;
  beforeAll(async () => {
    parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    // The same parts, counting the rows every forward runs.
    counted = Object.assign(Object.create(parts) as ModelParts, {
      embed: (x: Float32Array, t: Float32Array, y: BigInt64Array) => ((rows += t.length), parts.embed(x, t, y)),
    });
  });
  afterAll(async () => parts?.close());

  it("over the whole trajectory changes no bit; inside [0.3, 0.7] guided evaluations take two rows and the rest one", async () => {
    const engine = createEngine({ parts: counted });
    const m = parts.manifest;
    const base = { label: 4, count: 2, steps: 10, sampler: "euler", guidance: 2.5, seed: 3 };
    rows = 0;
    const plain = await generate(engine, resolveGenerateParams(base, m));
    expect(rows).toBe(2 * 2 * 10);
    const whole = await generate(engine, resolveGenerateParams({ ...base, guidance_t_min: 0, guidance_t_max: 1 }, m));
    whole.images.forEach((x, i) => expect(same(x, plain.images[i]!)).toBe(true));
    rows = 0;
    const part = await generate(engine, resolveGenerateParams({ ...base, guidance_t_min: 0.3, guidance_t_max: 0.7 }, m));
    const ts = timesteps(10).slice(0, 10);
    const guided = ts.filter((t) => t >= 0.3 && t <= 0.7).length;
    expect(guided).toBeGreaterThan(0);
    expect(guided).toBeLessThan(10);
    expect(rows).toBe(2 * (2 * guided + (10 - guided)));
    expect(part.evals).toBe(10);
    expect(same(part.images[0]!, plain.images[0]!)).toBe(false);
  });

  it("gives each request of a mixed batch (intervals, none, unguided; euler and heun) the result it gets alone", async () => {
    const engine = createEngine({ parts });
    const P = 784;
    const specs: Omit<StepTask, "state">[] = [
      { label: 1, guidance: 2, guidanceInterval: { tMin: 0.2, tMax: 0.8 } },
      { label: 2, guidance: 2 },
      { label: 3, guidance: 3, guidanceInterval: { tMin: 0.5, tMax: 1 } },
      { label: 10, guidance: 1 },
    ];
    const samplers = ["euler", "heun", "euler", "heun"] as const;
    const init = () => specs.map((s, i) => ({ ...s, state: initState({ sampler: samplers[i]!, steps: 6, shift: 1 }, gaussianNoise(8, i, P)) }));
    const run = async (tasks: StepTask[]) => {
      while (!tasks.every((t) => isDone(t.state))) {
        const live = tasks.filter((t) => !isDone(t.state));
        const r = await engine.step(live);
        live.forEach((t, i) => Object.assign(t, { state: r[i]!.state }));
      }
      return tasks.map((t) => t.state.x);
    };
    const together = await run(init());
    for (let i = 0; i < specs.length; i++) {
      const [alone] = await run([init()[i]!]);
      expect(same(alone!, together[i]!), `request ${i}`).toBe(true);
    }
  });
});
