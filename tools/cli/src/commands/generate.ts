import { writeFileSync } from "node:fs";
import { createLaneEngine, generate } from "@switchyard/engine";
import { resolveGenerateParams } from "@switchyard/manifest";
import { encodePng, tileGrid } from "@switchyard/image";
import { type GenerateEvent, type SamplerName, createClient } from "@switchyard/client";
import { Code, SwitchyardError } from "@switchyard/errors";
import { defined, num, str } from "../args";

/** --guidance-interval LO:HI → the two parameters; an error naming the flag otherwise. */
export function guidanceIntervalFlag(flags: Record<string, unknown>): { guidance_t_min?: number; guidance_t_max?: number } {
  const v = str(flags, "guidance-interval");
  if (v === undefined) return {};
  const m = /^\s*([0-9.]+)\s*:\s*([0-9.]+)\s*$/.exec(v);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2]) : NaN;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi)) {
    throw new SwitchyardError(`--guidance-interval ${JSON.stringify(v)} must be LO:HI with numbers in [0, 1] and LO <= HI, e.g. 0.2:0.8`, Code.InvalidArgument, { field: "guidance-interval" });
  }
  return { guidance_t_min: lo, guidance_t_max: hi };
}

export const GENERATE_HELP = `switchyard generate [options]
  Generates images in-process with the engine and writes a PNG grid.
  --label N        class label 0..9 (omit for unconditional)
  --count N        images (default 1)
  --steps N        sampler steps (default: the model's, 20)
  --sampler S      euler | heun | pc (default euler)
  --guidance G     classifier-free guidance scale (default 2; 1 = off)
  --guidance-interval LO:HI
                   guidance only for evaluations at t in [LO, HI] (t: 1 = noise, 0 = image),
                   one conditional row elsewhere (default: the whole trajectory)
  --reuse-threshold R
                   residual reuse, R in (0, 1]: an evaluation whose first block's residual
                   is within R of its forecast (from the image's last two full ones) skips
                   the later blocks (default: off; 0.3 kept the bundled model's quality at
                   20 Euler steps with 68 % of evaluations reused)
  --shift S        timestep shift (default 1)
  --seed N         noise seed (default 0)
  --out FILE       PNG path (default grid.png)
  --model DIR      model directory (default: the bundled model)
  --server H:P     generate on a running cluster through the SDK instead of in-process
  --token T        API token for --server (also SWITCHYARD_TOKEN)
  --timeout-ms N   deadline for --server`;

/**
 * `step k/n`, rewritten in place on a terminal; elsewhere (a pipe, a log file) nothing:
 * the result line says how many evaluations ran.
 */
export function stepProgress(out: { isTTY?: boolean; write(s: string): unknown }): { step(k: number, n: number): void; end(): void } {
  let shown = false;
  return {
    step(k, n) {
      if (!out.isTTY) return;
      out.write(`\rstep ${k}/${n}`);
      shown = true;
    },
    end() {
      if (shown) out.write("\n");
    },
  };
}

async function runRemote(flags: Record<string, unknown>, server: string): Promise<void> {
  const token = str(flags, "token") ?? process.env.SWITCHYARD_TOKEN;
  const client = createClient({ address: server, ...(token ? { token } : {}) });
  try {
    const sampler = str(flags, "sampler");
    const params = defined({
      label: num(flags, "label"), count: num(flags, "count"), steps: num(flags, "steps"), guidance: num(flags, "guidance"),
      shift: num(flags, "shift"), seed: num(flags, "seed"),
    });
    const interval = guidanceIntervalFlag(flags);
    const timeoutMs = num(flags, "timeout-ms");
    let result: Extract<GenerateEvent, { type: "result" }> | undefined;
    const progress = stepProgress(process.stderr);
    const remoteInterval = defined({ guidanceTMin: interval.guidance_t_min, guidanceTMax: interval.guidance_t_max, reuseThreshold: num(flags, "reuse-threshold") });
    for await (const e of client.generate({ ...params, ...remoteInterval, ...(sampler ? { sampler: sampler as SamplerName } : {}) }, timeoutMs ? { timeoutMs } : {})) {
      if (e.type === "accepted") process.stderr.write(`accepted ${e.requestId} (queue position ${e.queuePosition})\n`);
      else if (e.type === "progress") progress.step(e.step, e.steps);
      else result = e;
    }
    progress.end();
    if (!result) throw new Error("no result");
    const img = result.images[0]!;
    const grid = tileGrid(result.images.map((i) => i.data), img.height, img.width);
    const out = str(flags, "out") ?? "grid.png";
    writeFileSync(out, encodePng(grid.pixels, grid.width, grid.height));
    const t = result.timings;
    console.log(`wrote ${out}: ${result.images.length} images from ${server}, seed ${result.seed}, queue ${t.queueMs.toFixed(0)} ms, total ${t.totalMs.toFixed(0)} ms, ${t.modelEvals} evals${t.reusedEvals + t.fullEvals > 0 ? ` (${t.reusedEvals} reused, ${t.fullEvals} full over all images)` : ""}`);
  } finally {
    client.close();
  }
}

export async function runGenerate(flags: Record<string, unknown>, modelDir: string): Promise<void> {
  const server = str(flags, "server");
  if (server) return runRemote(flags, server);
  // In-process on lanes: big batches are cut into groups that run side by side, one per core.
  const engine = await createLaneEngine({ dir: modelDir });
  try {
    const m = engine.parts.manifest;
    const params = resolveGenerateParams(
      defined({
        label: num(flags, "label"), count: num(flags, "count"), steps: num(flags, "steps"), sampler: str(flags, "sampler"),
        guidance: num(flags, "guidance"), shift: num(flags, "shift"), seed: num(flags, "seed"), ...guidanceIntervalFlag(flags),
        reuse_threshold: num(flags, "reuse-threshold"),
      }),
      m,
    );
    const out = str(flags, "out") ?? "grid.png";
    const progress = stepProgress(process.stderr);
    const r = await generate(engine, params, {
      onProgress: (p) => progress.step(p.step, p.steps),
    });
    progress.end();
    const grid = tileGrid(r.images, m.image.height, m.image.width, { range: m.image.valueRange });
    writeFileSync(out, encodePng(grid.pixels, grid.width, grid.height));
    const what = params.label === undefined ? "unconditional" : `label ${params.label} (${m.conditioning.classNames?.[params.label] ?? "?"})`;
    console.log(`wrote ${out}: ${params.count} × ${what}, ${params.sampler} ${params.steps} steps, guidance ${params.guidance}${params.guidanceInterval ? ` for t in [${params.guidanceInterval.tMin}, ${params.guidanceInterval.tMax}]` : ""}, ${r.evals} evals${params.reuseThreshold ? ` (${r.reusedEvals} reused, ${r.evals * params.count - r.reusedEvals} full over all images)` : ""}, ${(r.ms / 1000).toFixed(2)} s`);
  } finally {
    await engine.close();
  }
}
