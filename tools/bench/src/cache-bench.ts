/**
 * Expert-cache benchmark (issue: predictive cache). Three parts, side by side in one run:
 *
 *  1. replay: the held-out routing trace through one worker's cache (no model runs):
 *     the policies' decisions alone, on 100 requests;
 *  2. live: the real model, one worker's experts on an expert device (a thread running
 *     ONNX Runtime; loading one = copying its weights from the host store),
 *     at device budgets of 25/50/75 % of its experts and 1/4/32 images per tick, for
 *     LRU, LFU and predictive: distinct experts a tick needs per layer, hit rate, MiB
 *     loaded and wasted per tick, stall (compute waiting on loads) and step latency ÷
 *     all-resident (measured in the same run, before and after each batch's group);
 *  3. route-aware batching on and off: an embedded cluster under a 50 % predictive
 *     budget, more runnable requests than fit in a tick: distinct experts per tick and
 *     throughput.
 *
 *   npm run bench:cache -- [--steps 6] [--batches 1,4,32] [--skip-replay] [--skip-live] [--skip-batching] [--requests 32] [--tick-images 2] [--provider cpu|cuda]
 *
 * `--provider cuda`: the live section's sessions (dense parts and the expert device) on
 * ONNX Runtime's CUDA provider (services/worker/README.md says what it needs).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { createClient } from "@switchyard/client";
import { startEmbeddedCluster } from "@switchyard/cluster";
import { DEFAULT_RESIDENCY_LOOKAHEAD, replayTrace } from "@switchyard/expert-cache";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { readTrace } from "@switchyard/trace";
import { parseExecutionProvider } from "@switchyard/model";
import { type LiveResult, createLiveBench } from "./cache-live";
import { median, table } from "./stats";

const { values: flags } = parseArgs({
  options: {
    lookahead: { type: "string", default: String(DEFAULT_RESIDENCY_LOOKAHEAD) },
    steps: { type: "string", default: "6" },
    batches: { type: "string", default: "1,4,32" },
    requests: { type: "string", default: "32" },
    "tick-images": { type: "string", default: "2" },
    "skip-replay": { type: "boolean", default: false },
    "skip-live": { type: "boolean", default: false },
    "skip-batching": { type: "boolean", default: false },
    provider: { type: "string", default: "cpu" },
  },
});
const provider = parseExecutionProvider(flags.provider!, "--provider");
const m = loadManifest(BUNDLED_MODEL_DIR);
const expertBytes = m.parts.find((p) => p.kind === "expert")!.bytes;
const mib = (b: number) => (b / 1048576).toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const FRACTIONS = [0.25, 0.5, 0.75];
const BATCHES = flags.batches!.split(",").map(Number);
const POLICIES = ["lru", "lfu", "predictive"];

if (!flags["skip-replay"]) {
  const hold = readTrace(join(BUNDLED_MODEL_DIR, "traces/holdout.safetensors"));
  const prior = readTrace(join(BUNDLED_MODEL_DIR, "traces/solve.safetensors"));
  const rows: (string | number)[][] = [];
  for (const f of FRACTIONS)
    for (const batch of BATCHES)
      for (const policy of POLICIES) {
        const r = await replayTrace(hold, { policy, budgetFraction: f, batch, expertBytes, priorTrace: prior, lookahead: Number(flags.lookahead) });
        rows.push([
          `${f * 100}%`, batch, policy, r.distinctPerLayer.toFixed(1), pct(r.hitRate), mib(r.bytesLoadedPerTick), mib(r.wastedBytesPerTick),
          r.stallsPerTick.toFixed(1), r.precision === undefined ? "" : `${(r.precision * 100).toFixed(0)}%`, r.recall === undefined ? "" : `${(r.recall * 100).toFixed(0)}%`,
        ]);
      }
  console.log(`# 1. replay: traces/holdout (priors from traces/solve), ${m.architecture.numLayers}×${m.moe.numExperts} experts of ${(expertBytes / 1024).toFixed(0)} KiB, lookahead ${flags.lookahead}`);
  console.log(table(["budget", "batch", "policy", "distinct/layer", "hit", "MiB loaded/tick", "MiB wasted/tick", "misses/tick", "precision", "recall"], rows));
}

if (!flags["skip-live"]) {
  const steps = Number(flags.steps);
  const bench = await createLiveBench(BUNDLED_MODEL_DIR, provider);
  const rows: (string | number)[][] = [];
  const summary: string[] = [];
  const floors: string[] = [];
  try {
    const loadMs = await bench.loadMs();
    const budgetExperts = (f: number) => Math.floor(f * m.architecture.numLayers * m.moe.numExperts);
    for (const batch of BATCHES) {
      // Two all-resident references, before and after the batch's group: on the expert
      // device with the same threads (what the cache itself costs), and a worker without a
      // budget (experts on the main thread, all cores for dense parts).
      const dev1 = await bench.run({ policy: undefined, budgetFraction: 1, batch }, steps, 1);
      const main1 = await bench.run({ policy: undefined, budgetFraction: 1, batch, mainThread: true }, steps, 1);
      const results: LiveResult[] = [];
      for (const f of FRACTIONS) for (const policy of POLICIES) results.push(await bench.run({ policy, budgetFraction: f, batch }, steps, 1));
      const dev2 = await bench.run({ policy: undefined, budgetFraction: 1, batch }, steps, 1);
      const main2 = await bench.run({ policy: undefined, budgetFraction: 1, batch, mainThread: true }, steps, 1);
      const baseMs = (median(dev1.stepMs) + median(dev2.stepMs)) / 2;
      const mainMs = (median(main1.stepMs) + median(main2.stepMs)) / 2;
      rows.push([batch, "100%", "all-resident", (dev1.stats.needed / dev1.stats.layerRuns).toFixed(1), "100.0%", "0.00", "0.00", (dev1.stats.stallMs / dev1.ticks).toFixed(1), baseMs.toFixed(1), "1.00", (baseMs / mainMs).toFixed(2), "", ""]);
      rows.push([batch, "100%", "no budget", "", "", "", "", "", mainMs.toFixed(1), (mainMs / baseMs).toFixed(2), "1.00", "", ""]);
      for (const r of results) {
        const s = r.stats;
        const ms = median(r.stepMs);
        rows.push([
          batch, `${r.config.budgetFraction * 100}%`, r.config.policy!, (s.needed / s.layerRuns).toFixed(1), pct(s.hits / s.needed), mib(s.bytesLoaded / r.ticks), mib(s.wastedBytes / r.ticks),
          (s.stallMs / r.ticks).toFixed(1), ms.toFixed(1), (ms / baseMs).toFixed(2), (ms / mainMs).toFixed(2),
          s.predicted ? pct(s.predictedHits / s.predicted) : "", s.predicted ? pct(s.predictedHits / s.needed) : "",
        ]);
      }
      for (const f of FRACTIONS) {
        const by = (p: string) => results.find((r) => r.config.policy === p && r.config.budgetFraction === f)!.stats.bytesLoaded;
        const pred = by("predictive");
        summary.push(`batch ${batch} @ ${f * 100}%: predictive ÷ LRU bytes ${(pred / by("lru")).toFixed(2)}, ÷ LFU ${(pred / by("lfu")).toFixed(2)}`);
        // Layers run in a cycle: of the experts a tick needs, at most the budget can stay
        // resident from the tick before, so any policy loads at least the rest, one by one
        // on the device, and no overlap makes a step shorter than those loads.
        // (distinct experts per layer run × layers: with micro-batches a layer runs twice
        // a tick and the union of the two is at least either)
        const neededPerTick = (dev1.stats.needed / dev1.stats.layerRuns) * m.architecture.numLayers;
        const minLoads = Math.max(0, neededPerTick - budgetExperts(f));
        floors.push(`batch ${batch} @ ${f * 100}%: ≥ ${minLoads.toFixed(0)} loads/tick × ${loadMs.toFixed(2)} ms = ${(minLoads * loadMs).toFixed(1)} ms vs all-resident step ${baseMs.toFixed(1)} ms → ÷ all-resident ≥ ${Math.max(1, (minLoads * loadMs) / baseMs).toFixed(2)}`);
      }
    }
  } finally {
    await bench.close();
  }
  console.log(`\n# 2. live: one worker's ${m.architecture.numLayers * m.moe.numExperts} experts on an expert device, ${steps} euler steps with CFG per request, warm cache (a warm-up set first); per tick; ONNX Runtime on ${provider}`);
  console.log(table(["batch", "budget", "policy", "distinct/layer", "hit", "MiB loaded", "MiB wasted", "stall ms", "step ms", "÷ all-resident", "÷ no budget", "precision", "recall"], rows));
  console.log("all-resident: every expert on the expert device, same threads; no budget: a worker without SWITCHYARD_EXPERT_BUDGET (experts on the main thread, dense threads min(4, cores))");
  console.log(summary.join("\n"));
  console.log("\nfloor of step ÷ all-resident from loading alone (distinct experts a tick needs − budget, each loaded once; measured device load time):");
  console.log(floors.join("\n"));
}

if (!flags["skip-batching"]) {
  const n = Number(flags.requests);
  const rows: (string | number)[][] = [];
  for (const routeAware of [false, true, false, true]) {
    // A few images per tick (2 rows each with CFG): more runnable requests than fit.
    const c = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 1, port: 0, routeAware, limits: { maxTickRows: 2 * Number(flags["tick-images"]), maxQueued: n }, cache: { budget: { fraction: 0.5 }, policy: "predictive" } });
    const client = createClient({ address: c.address });
    try {
      const t0 = performance.now();
      await Promise.all(Array.from({ length: n }, (_, i) => client.generateImages({ label: (i * 7) % 10, count: 1, steps: Number(flags.steps), sampler: "euler", guidance: 2, seed: i })));
      const s = performance.now() - t0;
      const st = c.runtimes[0]!.stats().cache!;
      rows.push([routeAware ? "on" : "off", st.ticks, (st.needed / st.layerRuns).toFixed(2), mib(st.bytesLoaded / st.ticks), (n / (s / 1000)).toFixed(2), (s / 1000).toFixed(1)]);
    } finally {
      client.close();
      await c.stop();
    }
  }
  console.log(`\n# 3. route-aware batching: ${n} requests (1 image, ${flags.steps} steps, CFG) at once, ≤ ${flags["tick-images"]} images per tick, 1 worker, 50% predictive budget (two runs each, alternating)`);
  console.log(table(["route-aware", "ticks", "distinct/layer per tick", "MiB loaded/tick", "req/s", "seconds"], rows));
}
