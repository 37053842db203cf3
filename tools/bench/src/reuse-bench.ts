/**
 * Compute-skipping benchmark (#18): images/s, model calls and the quality they cost, per
 * setting, under a saturating load on a 2-worker cluster (every request submitted at
 * once), side by side in one run:
 *  - `uncached`: every evaluation guided (two rows: conditional and unconditional), run
 *    first and again last (`uncached again`) for each config; `× uncached` is against their mean;
 *  - `interval LO-HI`: guidance only for evaluations at t in [LO, HI], one row elsewhere;
 *  - `reuse T`: residual reuse at threshold T (an evaluation whose first-block residual
 *    is within T of its forecast from the image's last two full ones runs only the first block);
 *  - `interval LO-HI + reuse T`: both;
 *  - `fewer-steps`: the honest baseline — the same sampler with as few steps as give
 *    about a setting's model calls, every evaluation guided (once per step count).
 *
 *   npm run bench:reuse -- [--configs euler-20,euler-50,pc-20] [--intervals 0.2-0.8,0.4-1] [--thresholds 0.1,0.2,0.3,0.4]
 *                          [--both 0.4-1:0.3] [--per-class 20] [--request-images 4] [--workers 2] [--processes] [--max-tick-rows N] [--json FILE]
 *
 * model_calls: model rows per image through every block (a guided evaluation is 2, an
 * unguided one 1); a reused evaluation runs one block of L, so it counts 1/L of its rows
 * (from the results' reused/full counts; with an interval too, at the interval's mean
 * rows per evaluation);
 * accuracy: the bundled classifier's, over every class; fd: Fréchet distance of its
 * features against the test set's; bytes_per_image: cross-worker bytes per generated image
 * (rows out and expert outputs back, as the workers' counters received them).
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createClient } from "@switchyard/client";
import { createNatsBus, natsServerAvailable } from "@switchyard/bus";
import { startEmbeddedCluster, startProcessCluster } from "@switchyard/cluster";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { scoreImages } from "@switchyard/quality";
import { type GuidanceInterval, type SamplerName, evalsPerRun, guidedEvals } from "@switchyard/sampler";
import { cfgPairOverlap, readTrace } from "@switchyard/trace";
import { trafficTotals } from "@switchyard/worker";
import { join } from "node:path";
import { table } from "./stats";
import { bytesMoved, workerClients } from "./worker-traffic";

const { values: flags } = parseArgs({
  options: {
    configs: { type: "string", default: "euler-20,euler-50,pc-20" },
    intervals: { type: "string", default: "0.2-0.8,0.4-1" },
    thresholds: { type: "string", default: "0.1,0.2,0.3,0.4" },
    both: { type: "string", default: "0.4-1:0.3" },
    "per-class": { type: "string", default: "20" },
    "request-images": { type: "string", default: "4" },
    workers: { type: "string", default: "2" },
    guidance: { type: "string", default: "2" },
    /** real service processes over NATS and gRPC (needs nats-server) instead of the embedded cluster */
    processes: { type: "boolean", default: false },
    /** the scheduler's tick budget in model rows (SWITCHYARD_MAX_TICK_ROWS); unset: its default */
    "max-tick-rows": { type: "string" },
    json: { type: "string" },
  },
});

export interface ReuseRow {
  readonly setting: string;
  readonly model_calls: number;
  readonly images_per_s: number;
  readonly accuracy: number;
  readonly fd: number;
  readonly bytes_per_image: number;
  /** Residual reuse settings: the fraction of evaluations that reused. */
  readonly reused_fraction?: number;
}

/** Model rows one image costs: its evaluations, two rows where guided. Pure. */
export function modelRows(sampler: SamplerName, steps: number, guidance: number, interval?: GuidanceInterval): number {
  const params = { sampler, steps, shift: 1 };
  return evalsPerRun(params) + guidedEvals(params, guidance, interval);
}

function parseInterval(s: string): GuidanceInterval {
  const m = /^([0-9.]+)-([0-9.]+)$/.exec(s);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2]) : NaN;
  if (!(lo >= 0 && lo <= hi && hi <= 1)) throw new Error(`--intervals: ${JSON.stringify(s)} must be LO-HI with 0 <= LO <= HI <= 1`);
  return { tMin: lo, tMax: hi };
}

function parseThreshold(s: string): number {
  const t = Number(s);
  if (!(t > 0 && t <= 1)) throw new Error(`--thresholds/--both: ${JSON.stringify(s)} must be a number in (0, 1]`);
  return t;
}

function parseConfig(s: string): { sampler: SamplerName; steps: number } {
  const m = /^(euler|heun|pc)-(\d+)$/.exec(s);
  if (!m) throw new Error(`--configs: ${JSON.stringify(s)} must be SAMPLER-STEPS, e.g. euler-20`);
  return { sampler: m[1] as SamplerName, steps: Number(m[2]) };
}

/** The cluster the load runs on: embedded (one process, direct calls), or real service processes. */
async function startCluster(workers: number, processes: boolean, maxTickRows: number | undefined): Promise<{ address: string; bytes: () => Promise<number>; stop: () => Promise<void> }> {
  if (!processes) {
    const c = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers, port: 0, limits: { maxQueued: 4096, ...(maxTickRows ? { maxTickRows } : {}) } });
    // every byte that crossed is received once: rows by owners, outputs by homes
    return { address: c.address, bytes: async () => c.runtimes.reduce((a, r) => a + trafficTotals(r.stats()).bytesReceived, 0), stop: () => c.stop() };
  }
  if (!natsServerAvailable()) throw new Error("--processes needs nats-server on PATH");
  const prefix = `reuse${process.pid}`;
  const env = { SWITCHYARD_MAX_QUEUED: "4096", ...(maxTickRows ? { SWITCHYARD_MAX_TICK_ROWS: String(maxTickRows) } : {}) };
  const c = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers, subjectPrefix: prefix, env });
  const bus = await createNatsBus({ servers: c.nats, name: "bench-reuse" });
  const clients = await workerClients(bus, prefix, workers);
  const ids = Array.from({ length: workers }, (_, i) => `worker-${i}`);
  return {
    address: c.address,
    bytes: () => bytesMoved(clients, ids),
    stop: async () => {
      clients.close();
      await bus.close();
      await c.stop();
    },
  };
}

async function main(): Promise<void> {
  const m = loadManifest(BUNDLED_MODEL_DIR);
  const guidance = Number(flags.guidance);
  const perClass = Number(flags["per-class"]);
  const perRequest = Number(flags["request-images"]);
  const classes = m.conditioning.numClasses;
  const intervals = flags.intervals!.split(",").filter(Boolean).map(parseInterval);
  const thresholds = flags.thresholds!.split(",").filter(Boolean).map(parseThreshold);
  const both = flags.both!.split(",").filter(Boolean).map((s) => {
    const [iv, th] = s.split(":");
    return { interval: parseInterval(iv ?? ""), threshold: parseThreshold(th ?? "") };
  });
  const L = m.architecture.numLayers;
  // Would routing a CFG pair once pay? Only if its two rows nearly always pick the same experts.
  const holdout = readTrace(join(BUNDLED_MODEL_DIR, "traces/holdout.safetensors"));
  const o = cfgPairOverlap(holdout);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`# CFG pairs in traces/holdout (${o.pairs} pairs, ${o.slots} token-layer slots): same top-${holdout.topK} set ${pct(o.sameSet)} (per layer ${o.sameSetByLayer.map(pct).join(" ")}), same first choice ${pct(o.sameFirst)}, experts shared ${pct(o.sharedFraction)}`);
  const cluster = await startCluster(Number(flags.workers), flags.processes!, flags["max-tick-rows"] ? Number(flags["max-tick-rows"]) : undefined);
  const client = createClient({ address: cluster.address });
  const bytes = cluster.bytes;
  const rows: ReuseRow[] = [];
  const configOf: string[] = []; // per row, the config it was run for
  let current = "";
  const print = () => {
    // every setting against its config's uncached runs (the first and the last of the config: their mean)
    const base = new Map<string, number[]>();
    rows.forEach((r, i) => {
      if (/ uncached( again)?$/.test(r.setting)) base.set(configOf[i]!, [...(base.get(configOf[i]!) ?? []), r.images_per_s]);
    });
    console.log(table(["setting", "model_calls", "images/s", "× uncached", "accuracy", "fd", "KiB/image", "reused"], rows.map((r, i) => {
      const u = base.get(configOf[i]!);
      const mean = u ? u.reduce((a, b) => a + b, 0) / u.length : undefined;
      return [r.setting, r.model_calls, r.images_per_s.toFixed(2), mean ? (r.images_per_s / mean).toFixed(2) : "", (r.accuracy * 100).toFixed(1) + "%", r.fd.toFixed(2), (r.bytes_per_image / 1024).toFixed(1), r.reused_fraction === undefined ? "" : `${(100 * r.reused_fraction).toFixed(0)}%`];
    })));
  };
  try {
    // Warm-up at the load's shape: a fresh cluster's first full ticks are slow (measured:
    // with a 16-image warm-up the first setting ran at 6.4 images/s, the next ones at ~10).
    await Promise.all(Array.from({ length: Math.ceil((classes * perClass) / perRequest) }, (_, i) => client.generateImages({ label: i % classes, count: perRequest, steps: 3, guidance, seed: 1 + i })));
    const run = async (setting: string, sampler: SamplerName, steps: number, interval?: GuidanceInterval, reuseThreshold?: number): Promise<ReuseRow> => {
      const b0 = await bytes();
      const t0 = performance.now();
      const jobs: Promise<{ label: number; images: Float32Array[]; reused: number; full: number }>[] = [];
      for (let c = 0; c < classes; c++) {
        for (let done = 0; done < perClass; done += perRequest) {
          const count = Math.min(perRequest, perClass - done);
          // the same seeds for every setting: settings differ only in what they compute
          const p = { label: c, count, steps, sampler, guidance, seed: 7_000_003 * c + done, ...(interval ? { guidanceTMin: interval.tMin, guidanceTMax: interval.tMax } : {}), ...(reuseThreshold ? { reuseThreshold } : {}) };
          jobs.push(client.generateImages(p).then((r) => ({ label: c, images: r.images.map((i) => i.data), reused: r.timings.reusedEvals, full: r.timings.fullEvals })));
        }
      }
      const done = await Promise.all(jobs);
      const seconds = (performance.now() - t0) / 1000;
      const images = classes * perClass;
      const byClass = Array.from({ length: classes }, (_, c) => done.filter((d) => d.label === c).flatMap((d) => d.images));
      const q = await scoreImages(BUNDLED_MODEL_DIR, m, byClass);
      const rowsPerImage = modelRows(sampler, steps, guidance, interval);
      const reused = done.reduce((s, d) => s + d.reused, 0);
      const full = done.reduce((s, d) => s + d.full, 0);
      // reused evaluations ran 1 block of L (at the setting's mean rows per evaluation)
      const calls = reuseThreshold ? (rowsPerImage * (full + reused / L)) / (full + reused) : rowsPerImage;
      configOf.push(current);
      rows.push({ setting, model_calls: Math.round(calls * 10) / 10, images_per_s: images / seconds, accuracy: q.meanAccuracy, fd: q.frechetDistance, bytes_per_image: ((await bytes()) - b0) / images, ...(reuseThreshold ? { reused_fraction: reused / (full + reused) } : {}) });
      const r = rows.at(-1)!;
      console.log(`${setting}: ${r.images_per_s.toFixed(2)} images/s, ${r.model_calls} model rows per image${reuseThreshold ? ` (${((100 * reused) / (full + reused)).toFixed(1)}% of evaluations reused)` : ""}, accuracy ${(q.meanAccuracy * 100).toFixed(1)}%, fd ${q.frechetDistance.toFixed(2)}`);
      return r;
    };
    const configs = flags.configs!.split(",").filter(Boolean).map(parseConfig);
    // ... and one whole uncached setting, not recorded: images/s still rose ~20 % over the
    // first settings after the short warm-up alone (euler-20 uncached 8.4 first, 9.7 in a shorter run).
    if (configs[0]) {
      await run("warm-up", configs[0].sampler, configs[0].steps);
      rows.pop();
      configOf.pop();
    }
    for (const { sampler, steps } of configs) {
      const name = `${sampler}-${steps}`;
      current = name;
      await run(`${name} uncached`, sampler, steps);
      const fewer = new Set<number>();
      // fewer steps at about a setting's model calls (once per step count)
      const baseline = async (target: number) => {
        let best = 1;
        for (let n = 1; n <= steps; n++) if (Math.abs(modelRows(sampler, n, guidance) - target) < Math.abs(modelRows(sampler, best, guidance) - target)) best = n;
        if (!fewer.has(best) && best < steps) await run(`${sampler}-${best} fewer-steps`, sampler, best);
        fewer.add(best);
      };
      for (const iv of intervals) await baseline((await run(`${name} interval ${iv.tMin}-${iv.tMax}`, sampler, steps, iv)).model_calls);
      for (const th of thresholds) await baseline((await run(`${name} reuse ${th}`, sampler, steps, undefined, th)).model_calls);
      for (const b of both) await baseline((await run(`${name} interval ${b.interval.tMin}-${b.interval.tMax} + reuse ${b.threshold}`, sampler, steps, b.interval, b.threshold)).model_calls);
      // again at the end: the drift over the config's run shows, and ratios use the mean
      await run(`${name} uncached again`, sampler, steps);
    }
  } finally {
    client.close();
    await cluster.stop();
  }
  console.log(`\n# compute skipping: ${flags.workers} workers (${flags.processes ? "service processes over NATS and gRPC" : "embedded"}), every request at once (${classes} classes × ${perClass} images, ${perRequest} per request), guidance ${guidance}`);
  print();
  if (flags.json) {
    writeFileSync(flags.json, JSON.stringify(rows, null, 2) + "\n");
    console.log(`wrote ${flags.json}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
