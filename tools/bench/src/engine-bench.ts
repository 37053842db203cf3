/**
 * Engine benchmark (issue: foundation). Prints, measured side by side in one run:
 *  1. engine step time ÷ PyTorch eager step time at batch 1, 8, 32 (goal <= 1.0): the
 *     engine as `switchyard generate` runs it (on lanes, one per core: lanes.ts) and as
 *     one engine on the calling thread with `--threads` intra-op threads; rounds
 *     alternate the three so that machine noise hits them alike;
 *  2. sample quality against model calls for euler, heun and the pseudo-corrector.
 *
 *   npm run bench:engine -- [--rounds 5] [--iters 5] [--per-class 20] [--threads 2] [--skip-quality] [--engine-only] [--provider cpu|cuda]
 *
 * `--provider cuda`: the engine on ONNX Runtime's CUDA provider (one lane: one GPU) and
 * PyTorch on the GPU (services/worker/README.md says what the provider needs).
 *
 * The PyTorch side is the model rebuilt from the committed parts, checked against the
 * golden tensors first; a PyTorch side that is missing or fails is an error unless
 * --engine-only is given.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { availableParallelism } from "node:os";
import { type Engine, type StepTask, createEngine, createLaneEngine } from "@switchyard/engine";
import { BUNDLED_MODEL_DIR, createOnnxModel, parseExecutionProvider } from "@switchyard/model";
import { evaluateQuality } from "@switchyard/quality";
import { type SamplerName, gaussianNoise, initState } from "@switchyard/sampler";
import { median, table } from "./stats";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    iters: { type: "string", default: "5" },
    "per-class": { type: "string", default: "20" },
    threads: { type: "string", default: String(Math.min(4, availableParallelism())) },
    "skip-quality": { type: "boolean", default: false },
    batches: { type: "string", default: "1,8,32" },
    "engine-only": { type: "boolean", default: false },
    provider: { type: "string", default: "cpu" },
  },
});
const provider = parseExecutionProvider(flags.provider!, "--provider");
const rounds = Number(flags.rounds);
const iters = Number(flags.iters);
const threads = Number(flags.threads);
const batches = flags.batches!.split(",").map(Number);
const dir = BUNDLED_MODEL_DIR;
const GUIDANCE = 2;

/** The PyTorch side: a python process answering one JSON line per command. */
async function startTorch(): Promise<{ step(batch: number): Promise<number[]>; info: string; close(): void }> {
  const py = spawn("python3", [join(import.meta.dirname, "../../model-zoo/bench_server.py"), dir, String(threads), provider], {
    cwd: join(import.meta.dirname, "../../model-zoo"),
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error("PyTorch bench process exited");
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  try {
    const hello = await next();
    if (hello.error) throw new Error(String(hello.error));
    return {
      info: `torch ${String(hello.torch)} on ${String(hello.device)}, ${String(hello.threads)} threads; rebuilt model within ${Number(hello.rebuild_max_abs_diff).toExponential(2)} of the golden tensors (${String(hello.checked)} outputs)`,
      async step(batch) {
        py.stdin.write(JSON.stringify({ op: "step", batch, iters, guidance: GUIDANCE }) + "\n");
        return (await next()).ms as number[];
      },
      close() {
        py.stdin.end(JSON.stringify({ op: "quit" }) + "\n");
      },
    };
  } catch (e) {
    py.kill();
    throw new Error(`the PyTorch side failed: ${(e as Error).message} (install tools/model-zoo/requirements.txt, or pass --engine-only to time the engine alone)`);
  }
}

async function main(): Promise<void> {
  const parts = await createOnnxModel({ dir, denseThreads: threads, executionProvider: provider });
  const engine = createEngine({ parts });
  const lanes = await createLaneEngine({ dir, executionProvider: provider, ...(provider === "cuda" ? { lanes: 1 } : {}) });
  const m = parts.manifest;
  const P = m.image.channels * m.image.height * m.image.width;
  const torch = flags["engine-only"] ? undefined : await startTorch();
  console.log(`# engine step time vs PyTorch eager (one euler step, guidance ${GUIDANCE} => 2 rows/image; median of ${rounds}×${iters}; ${threads} threads; ONNX Runtime on ${provider})`);
  if (torch) console.log(`# ${torch.info}`);
  const rows: (string | number)[][] = [];
  for (const B of batches) {
    const tasks: StepTask[] = Array.from({ length: B }, (_, i) => ({
      state: initState({ sampler: "euler", steps: 1000, shift: 1 }, gaussianNoise(9, i, P)),
      label: i % 10,
      guidance: GUIDANCE,
    }));
    const eng: number[] = [];
    const one: number[] = [];
    const pt: number[] = [];
    const states = [tasks, tasks];
    const round = async (k: number, e: Engine, out: number[] | undefined) => {
      for (let i = 0; i < iters; i++) {
        const t0 = performance.now();
        const r = await e.step(states[k]!);
        out?.push(performance.now() - t0);
        states[k] = states[k]!.map((t, j) => ({ ...t, state: r[j]!.state }));
      }
    };
    await round(0, lanes, undefined); // warm-up
    await round(1, engine, undefined);
    if (torch) await torch.step(B);
    for (let r = 0; r < rounds; r++) {
      await round(0, lanes, eng);
      await round(1, engine, one);
      if (torch) pt.push(...(await torch.step(B)));
    }
    const e = median(eng);
    const o = median(one);
    const p = torch ? median(pt) : NaN;
    const ratio = (x: number) => (torch ? (x / p).toFixed(3) : "n/a");
    rows.push([B, e.toFixed(2), o.toFixed(2), torch ? p.toFixed(2) : "n/a", ratio(e), ratio(o)]);
  }
  torch?.close();
  console.log(`# engine: on ${lanes.lanes} lanes (lanes.ts: a batch's images cut into groups run side by side, one per core); one engine: the calling thread alone, ${threads} intra-op threads`);
  console.log(table(["batch", "engine ms", "one engine ms", "pytorch ms", "engine/pytorch", "one engine/pytorch"], rows));

  if (!flags["skip-quality"]) {
    const perClass = Number(flags["per-class"]);
    console.log(`\n# sample quality against model calls (${perClass} images/class, guidance ${GUIDANCE}, same seeds for every sampler)`);
    const configs: [SamplerName, number][] = [
      ["euler", 5], ["euler", 10], ["euler", 20],
      ["heun", 3], ["heun", 5], ["heun", 10],
      ["pc", 4], ["pc", 9], ["pc", 19],
    ];
    const q: (string | number)[][] = [];
    for (const [sampler, steps] of configs) {
      const r = await evaluateQuality(engine, dir, { perClass, steps, sampler, guidance: GUIDANCE, shift: 1, seed: 5 });
      q.push([sampler, steps, r.evalsPerImage, (r.meanAccuracy * 100).toFixed(1) + "%", r.frechetDistance.toFixed(2), r.seconds.toFixed(1)]);
      // progress on stderr (a run takes minutes); the aligned table once, on stdout
      console.error(`# done: ${q.at(-1)!.join(" ")}`);
    }
    console.log(table(["sampler", "steps", "model calls", "accuracy", "frechet", "s"], q));
  }
  await lanes.close();
  await parts.close();
}

await main();
