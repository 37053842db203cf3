import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel, indexParts } from "@switchyard/model";
import { type SamplerName, gaussianNoise, initState, isDone } from "@switchyard/sampler";
import { type SafeTensors, maxAbsDiff, readSafeTensors } from "@switchyard/tensor";
import { resolveGenerateParams } from "@switchyard/manifest";
import { type Engine, type StepTask, createEngine } from "./engine";
import { generate } from "./generate";

/** Golden tolerance of the issue: max abs error vs PyTorch. */
const GOLDEN_TOL = 1e-4;

let parts: ModelParts;
let engine: Engine;
let golden: SafeTensors;
const errors: Record<string, number> = {};

function f32(st: SafeTensors, name: string): Float32Array {
  return st.get(name).data as Float32Array;
}

beforeAll(async () => {
  parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
  engine = createEngine({ parts });
  golden = readSafeTensors(join(BUNDLED_MODEL_DIR, parts.manifest.golden!.parts));
});

afterAll(async () => {
  // State the error of every check (the issue asks for it per check).
  const rows = Object.entries(errors).map(([k, v]) => `${k.padEnd(22)} ${v.toExponential(2)}`);
  if (rows.length) console.log(`max abs error vs PyTorch (tolerance ${GOLDEN_TOL}):\n  ${rows.join("\n  ")}`);
  await parts?.close();
});

function check(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = GOLDEN_TOL): void {
  const e = maxAbsDiff(got, want);
  errors[name] = Math.max(errors[name] ?? 0, e);
  expect(e, `${name}: max abs error ${e}`).toBeLessThanOrEqual(tol);
}

describe("every part matches PyTorch", () => {
  it("embed", async () => {
    const y = golden.get("embed.in.y").data as BigInt64Array;
    const r = await parts.embed(f32(golden, "embed.in.x"), f32(golden, "embed.in.t"), y);
    check("embed", r.h, f32(golden, "embed.out.h"));
    check("embed", r.c, f32(golden, "embed.out.c"));
  });

  it("dense, experts and shared of every block", async () => {
    const m = parts.manifest;
    const idx = indexParts(m);
    const B = golden.get("block0.dense.in.h").shape[0]!;
    for (let l = 0; l < m.architecture.numLayers; l++) {
      const d = await parts.dense(l, f32(golden, `block${l}.dense.in.h`), f32(golden, `block${l}.dense.in.c`), B);
      for (const k of ["h1", "u", "logits", "gate"] as const) check("dense", d[k], f32(golden, `block${l}.dense.out.${k}`));
      for (const spec of idx.experts[l]!) {
        const u = golden.get(`${spec.name}.in.u`);
        check("expert", await parts.expert(l, spec.expert!, u.data as Float32Array, u.shape[0]!), f32(golden, `${spec.name}.out.y`));
      }
      if (idx.shared[l]) {
        const u = golden.get(`block${l}.shared.in.u`);
        check("shared", await parts.shared(l, u.data as Float32Array, u.shape[0]!), f32(golden, `block${l}.shared.out.y`));
      }
    }
  });

  it("final", async () => {
    const B = golden.get("final.in.c").shape[0]!;
    check("final", await parts.final(f32(golden, "final.in.h"), f32(golden, "final.in.c"), B), f32(golden, "final.out.v"));
  });

  it("the whole model through the engine (routing and combining in TypeScript)", async () => {
    const x = f32(golden, "embed.in.x");
    const t = f32(golden, "embed.in.t");
    const y = golden.get("embed.in.y").data as BigInt64Array;
    const P = x.length / t.length;
    const r = await engine.forward(Array.from(t, (tt, i) => ({ x: x.subarray(i * P, (i + 1) * P), t: tt, label: Number(y[i]), guidance: 1 })));
    const v = new Float32Array(x.length);
    r.velocities.forEach((vi, i) => v.set(vi, i * P));
    check("model", v, f32(golden, "model.out.v"));
  });
});

describe("full sampling runs match PyTorch", () => {
  it.each(["euler", "heun", "pc"] as const)("%s", async (sampler) => {
    const st = readSafeTensors(join(BUNDLED_MODEL_DIR, parts.manifest.golden!.samples[sampler]!));
    const noise = f32(st, "noise");
    const labels = Array.from(st.get("labels").data as BigInt64Array, Number);
    const steps = Number(st.metadata.steps);
    const guidance = Number(st.metadata.guidance);
    const P = noise.length / labels.length;
    // One request per label (each with its own explicit noise), all in one engine batch.
    let tasks: StepTask[] = labels.map((label, i) => ({
      state: initState({ sampler: sampler as SamplerName, steps, shift: Number(st.metadata.shift) }, noise.subarray(i * P, (i + 1) * P)),
      label,
      guidance,
    }));
    while (!tasks.every((t) => isDone(t.state))) {
      const res = await engine.step(tasks);
      tasks = tasks.map((t, i) => ({ ...t, state: res[i]!.state }));
    }
    expect(tasks[0]!.state.evals).toBe(Number(st.metadata.calls));
    const x = new Float32Array(noise.length);
    tasks.forEach((t, i) => x.set(t.state.x, i * P));
    check(`sample-${sampler}`, x, f32(st, "x"));
  });
});

describe("continuous batching", () => {
  it("a batch mixing requests at different steps gives each the result it gets alone", async () => {
    const specs = [
      { label: 3, steps: 8, sampler: "euler", guidance: 2, seed: 1, count: 2 },
      { label: 7, steps: 5, sampler: "heun", guidance: 1, seed: 2, count: 1 },
      { label: 1, steps: 6, sampler: "pc", guidance: 3, seed: 3, count: 1 },
    ] as const;
    const m = parts.manifest;
    const params = specs.map((s) => resolveGenerateParams(s, m));
    const alone: Float32Array[][] = [];
    for (const p of params) alone.push((await generate(engine, p)).images);

    // Mixed: request i joins at tick 2*i; every tick steps every unfinished image in one batch.
    const P = m.image.channels * m.image.height * m.image.width;
    type Img = { req: number; task: StepTask };
    const pending: Img[][] = params.map((p, r) =>
      Array.from({ length: p.count }, (_, i) => ({
        req: r,
        task: { state: initState({ sampler: p.sampler, steps: p.steps, shift: p.shift }, gaussianNoise(p.seed, i, P)), label: p.label!, guidance: p.guidance },
      })),
    );
    let active: Img[] = [];
    const done: Img[] = [];
    for (let tick = 0; active.length > 0 || pending.some((p) => p.length > 0); tick++) {
      if (tick % 2 === 0 && tick / 2 < pending.length) active.push(...pending[tick / 2]!.splice(0));
      const res = await engine.step(active.map((a) => a.task));
      active = active.map((a, i) => ({ ...a, task: { ...a.task, state: res[i]!.state } }));
      done.push(...active.filter((a) => isDone(a.task.state)));
      active = active.filter((a) => !isDone(a.task.state));
    }
    for (let r = 0; r < params.length; r++) {
      const mine = done.filter((d) => d.req === r);
      expect(mine).toHaveLength(params[r]!.count);
      // images of one request finish in index order within the same tick
      mine.forEach((d, i) => check("batch-invariance", d.task.state.x, alone[r]![i]!, 1e-5));
    }
  });
});
