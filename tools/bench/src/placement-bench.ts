/**
 * Placement benchmark (issue: affinity placement). Prints, in one run:
 *  1. cross-worker bytes per image on held-out requests (traces/holdout, not used to
 *     solve) for the solver ÷ contiguous and ÷ load-only greedy at 2, 4 and 8 workers,
 *     with the worst per-layer imbalance, plus the token-stays (ExFlow) scheme's bytes;
 *  2. solve time for the reference model (exact: HiGHS per layer) and for a synthetic
 *     DeepSeek-V3-sized instance (58 MoE layers × 256 experts, top-8, 64 workers) with
 *     the heuristic;
 *  3. with --live: bytes per image measured on a 4-worker cluster before and after
 *     applying the solved plan (needs nats-server).
 *
 *   npm run bench:placement -- [--live] [--requests 16]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createNatsBus, natsServerAvailable } from "@switchyard/bus";
import { channels, subjects as makeSubjects, subscribe, toPlanFile } from "@switchyard/contract";
import { createClient } from "@switchyard/client";
import { startProcessCluster } from "@switchyard/cluster";
import { BUNDLED_MODEL_DIR } from "@switchyard/manifest";
import { addReplicas, contiguousPlacement, crossWorkerLowerBound, loadGreedyPlacement, placementCost, solveExact, solveHeuristic } from "@switchyard/placement";
import { type Trace, readTrace } from "@switchyard/trace";
import { createRng } from "@switchyard/sampler";
import { table } from "./stats";

const { values: flags } = parseArgs({ options: { live: { type: "boolean", default: false }, requests: { type: "string", default: "16" }, "skip-large": { type: "boolean", default: false } } });
const mib = (b: number) => (b / 1048576).toFixed(2);
const solveTrace = readTrace(join(BUNDLED_MODEL_DIR, "traces/solve.safetensors"));
const holdout = readTrace(join(BUNDLED_MODEL_DIR, "traces/holdout.safetensors"));

async function offline(): Promise<void> {
  const rows: (string | number)[][] = [];
  const replicaRows: (string | number)[][] = [];
  const bounds: string[] = [];
  for (const W of [2, 4, 8]) {
    const t0 = performance.now();
    const solved = await solveExact(solveTrace, { workers: W });
    const secs = (performance.now() - t0) / 1000;
    const heur = await solveHeuristic(solveTrace, { workers: W });
    const s = placementCost(holdout, solved.placement, { hidden: 128 });
    const h = placementCost(holdout, heur.placement, { hidden: 128 });
    const c = placementCost(holdout, contiguousPlacement(W, 6, 32), { hidden: 128 });
    const g = placementCost(holdout, loadGreedyPlacement(solveTrace, W), { hidden: 128 });
    // the same plan with one redundant copy per worker per layer (EPLB-style, hottest experts)
    const sr = placementCost(holdout, addReplicas(solveTrace, solved.placement, W), { hidden: 128 });
    const eplb = placementCost(holdout, addReplicas(solveTrace, loadGreedyPlacement(solveTrace, W), W), { hidden: 128 });
    replicaRows.push([W, W, mib(sr.bytesPerImage), (sr.bytesPerImage / c.bytesPerImage).toFixed(3), sr.imbalance.toFixed(3), mib(eplb.bytesPerImage), (eplb.bytesPerImage / c.bytesPerImage).toFixed(3), eplb.imbalance.toFixed(3)]);
    // No plan with E/W experts per worker per layer can do better than these, whatever the homes.
    const lbReq = crossWorkerLowerBound(holdout, W, { hidden: 128, homesPer: "request" });
    const lbStep = crossWorkerLowerBound(holdout, W, { hidden: 128, homesPer: "step" });
    bounds.push(`${W} workers: ≥ ${mib(lbReq.bytesPerImage)} MiB/image with a home per image (${(lbReq.bytesPerImage / c.bytesPerImage).toFixed(3)} × contiguous; the solver is at ${(s.bytesPerImage / lbReq.bytesPerImage).toFixed(2)} × the bound), ≥ ${mib(lbStep.bytesPerImage)} with homes changing every step (${(lbStep.bytesPerImage / c.bytesPerImage).toFixed(3)} × contiguous)`);
    rows.push([
      W, mib(s.bytesPerImage), mib(c.bytesPerImage), mib(g.bytesPerImage), (s.bytesPerImage / c.bytesPerImage).toFixed(3), (s.bytesPerImage / g.bytesPerImage).toFixed(3),
      s.imbalance.toFixed(3), mib(s.tokenStaysBytesPerImage), secs.toFixed(2),
      `${(((heur.cost - solved.cost) / solved.cost) * 100).toFixed(2)}% / ${(h.bytesPerImage / s.bytesPerImage).toFixed(3)}`,
    ]);
  }
  console.log("# held-out requests (traces/holdout), dispatch-and-return MiB per image (20 steps, CFG), solver = exact (HiGHS per layer, alternating homes)");
  console.log(table(["workers", "solver", "contiguous", "load-greedy", "÷contig", "÷greedy", "imbalance", "token-stays", "solve s", "heuristic gap (solve / holdout)"], rows));
  console.log("with redundant copies (W per layer, on the hottest experts; a home holding a copy uses it, others spread rows over the copies):");
  console.log(table(["workers", "copies/layer", "solver+copies", "÷contig", "imbalance", "EPLB (load-greedy+copies)", "÷contig", "imbalance"], replicaRows));
  console.log("lower bound for any plan (E/W experts per worker per layer, any homing, balance relaxed; crossWorkerLowerBound):");
  for (const b of bounds) console.log(`  ${b}`);
}

/** Synthetic LLM-style trace: tokens with Zipf-skewed experts and inter-layer chains. */
function syntheticLarge(tokens: number, layers: number, experts: number, topK: number): Trace {
  const rng = createRng(7);
  const routing = new Int16Array(tokens * layers * topK);
  for (let t = 0; t < tokens; t++) {
    let prev = Math.floor(rng.next() * experts);
    for (let l = 0; l < layers; l++) {
      const chosen = new Set<number>();
      // follow the previous layer's top-1 with an affinity chain, else Zipf
      const first = rng.next() < 0.5 ? (prev * 7 + l) % experts : Math.floor(experts * rng.next() ** 2);
      chosen.add(first);
      while (chosen.size < topK) chosen.add(Math.floor(experts * rng.next() ** 2));
      [...chosen].forEach((e, k) => (routing[(t * layers + l) * topK + k] = e));
      prev = first;
    }
  }
  return {
    layers, experts, topK, tokens: 1, records: tokens,
    request: Int32Array.from({ length: tokens }, (_, i) => i), step: new Int32Array(tokens), branch: new Uint8Array(tokens),
    label: new Int32Array(tokens), t: new Float32Array(tokens), routing, weights: undefined,
  };
}

async function large(): Promise<void> {
  const trace = syntheticLarge(4096, 58, 256, 8);
  const t0 = performance.now();
  const r = await solveHeuristic(trace, { workers: 64 });
  const secs = (performance.now() - t0) / 1000;
  const s = placementCost(trace, r.placement, { hidden: 7168 });
  const c = placementCost(trace, contiguousPlacement(64, 58, 256), { hidden: 7168 });
  console.log(`\n# DeepSeek-V3-sized synthetic instance (58 layers × 256 experts, top-8, 64 workers, 4,096 tokens): heuristic ${secs.toFixed(1)} s, remote assignments ${(s.remoteFraction * 100).toFixed(1)} % vs contiguous ${(c.remoteFraction * 100).toFixed(1)} %, bytes ÷ contiguous ${(s.bytesPerImage / c.bytesPerImage).toFixed(3)}, imbalance ${s.imbalance.toFixed(3)}`);
  for (const slots of [64, 128, 192]) {
    const t1 = performance.now();
    const p = addReplicas(trace, r.placement, slots);
    const rs = (performance.now() - t1) / 1000;
    const x = placementCost(trace, p, { hidden: 7168 });
    console.log(`  + ${slots} redundant copies per layer (${slots / 64} per worker): ${(secs + rs).toFixed(1)} s in all, imbalance ${x.imbalance.toFixed(3)} (mean over layers ${x.meanImbalance.toFixed(3)}), bytes ÷ contiguous ${(x.bytesPerImage / c.bytesPerImage).toFixed(3)}`);
  }
}

async function live(): Promise<void> {
  if (!natsServerAvailable()) return console.log("\n(live: nats-server is not installed)");
  const prefix = "pbench";
  const cluster = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 4, subjectPrefix: prefix, env: { SWITCHYARD_DENSE_THREADS: "1" } });
  const bus = await createNatsBus({ servers: cluster.nats, name: "pbench" });
  const s = makeSubjects(prefix);
  const traffic = new Map<string, number>();
  subscribe(bus, channels(s).heartbeat, (hb) => void (hb.traffic && traffic.set(hb.workerId, hb.traffic.bytesReceived)));
  const total = () => [...traffic.values()].reduce((a, b) => a + b, 0);
  const client = createClient({ address: cluster.address });
  const n = Number(flags.requests);
  const run = async (seed: number) => {
    await new Promise((r) => setTimeout(r, 1500));
    const before = total();
    await Promise.all(Array.from({ length: n }, (_, i) => client.generateImages({ label: i % 10, steps: 20, guidance: 2, seed: seed + i })));
    await new Promise((r) => setTimeout(r, 1500)); // heartbeats carry the totals
    return (total() - before) / n;
  };
  try {
    const contiguous = await run(1000);
    const ids = ["worker-0", "worker-1", "worker-2", "worker-3"];
    const exact = (await solveExact(solveTrace, { workers: 4 })).placement;
    const kv = await bus.kv(s.plansBucket);
    await kv.put(s.planKey("dit-moe-fmnist"), { ...toPlanFile(exact, "dit-moe-fmnist", ids, "exact"), version: 1 });
    const solved = await run(1000);
    await kv.put(s.planKey("dit-moe-fmnist"), { ...toPlanFile(addReplicas(solveTrace, exact, 4), "dit-moe-fmnist", ids, "exact+copies"), version: 2 });
    const copies = await run(1000);
    console.log(`\n# live, 4 workers, ${n} requests × 20 steps (g=2) each side: ${mib(contiguous)} MiB/image contiguous → ${mib(solved)} MiB/image after apply (${(solved / contiguous).toFixed(3)}×) → ${mib(copies)} with 4 redundant copies per layer (${(copies / contiguous).toFixed(3)}×)`);
  } finally {
    client.close();
    await bus.close();
    await cluster.stop();
  }
}

await offline();
if (!flags["skip-large"]) await large();
if (flags.live) await live();
