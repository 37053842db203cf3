/**
 * The engine's hot path under V8's sampling profiler, summarized (#17: profile before
 * optimizing, and show the before/after). Runs engine steps at one batch size under
 * `node --cpu-prof`-equivalent sampling (the inspector's Profiler, so no files to find)
 * and prints self time by function and by where it is spent: ONNX Runtime (the native
 * run calls), the garbage collector, routing/gather/scatter in TypeScript, the rest.
 *
 *   npm run bench:profile -- [--batch 32] [--steps 20] [--threads 2] [--top 15] [--out FILE.cpuprofile]
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { createEngine, type StepTask } from "@switchyard/engine";
import { BUNDLED_MODEL_DIR, createOnnxModel } from "@switchyard/model";
import { gaussianNoise, initState } from "@switchyard/sampler";
import { summarizeProfile, type CpuProfile } from "./profile-summary";
import { table } from "./stats";

const { values: flags } = parseArgs({
  options: {
    batch: { type: "string", default: "32" },
    steps: { type: "string", default: "20" },
    threads: { type: "string", default: String(Math.min(4, availableParallelism())) },
    top: { type: "string", default: "15" },
    out: { type: "string" },
  },
});
const B = Number(flags.batch);
const steps = Number(flags.steps);
const parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, denseThreads: Number(flags.threads) });
const engine = createEngine({ parts });
const P = parts.manifest.image.channels * parts.manifest.image.height * parts.manifest.image.width;
let tasks: StepTask[] = Array.from({ length: B }, (_, i) => ({
  state: initState({ sampler: "euler", steps: 1000, shift: 1 }, gaussianNoise(9, i, P)),
  label: i % 10,
  guidance: 2,
}));
const step = async () => {
  const r = await engine.step(tasks);
  tasks = tasks.map((t, j) => ({ ...t, state: r[j]!.state }));
};
for (let i = 0; i < 3; i++) await step(); // warm-up

const session = new Session();
session.connect();
await session.post("Profiler.enable");
await session.post("Profiler.setSamplingInterval", { interval: 200 });
await session.post("Profiler.start");
const t0 = performance.now();
for (let i = 0; i < steps; i++) await step();
const wallMs = performance.now() - t0;
const { profile } = (await session.post("Profiler.stop")) as { profile: CpuProfile };
session.disconnect();
await parts.close();
if (flags.out) writeFileSync(flags.out, JSON.stringify(profile));

const s = summarizeProfile(profile);
const pct = (ms: number) => ((100 * ms) / s.totalMs).toFixed(1) + "%";
console.log(`# engine.step at batch ${B} (guidance 2), ${steps} steps: ${(wallMs / steps).toFixed(1)} ms/step; ${s.totalMs.toFixed(0)} ms sampled`);
console.log(table(["where", "ms/step", "share"], s.categories.map((c) => [c.name, (c.ms / steps).toFixed(2), pct(c.ms)])));
console.log(`\n# top ${flags.top} functions by self time`);
console.log(table(["function", "where", "ms/step", "share"], s.functions.slice(0, Number(flags.top)).map((f) => [f.name, f.where, (f.ms / steps).toFixed(2), pct(f.ms)])));
