/**
 * Runtime benchmark (issue: distributed runtime). Prints, measured in one run:
 *  1. step latency of 2 workers over loopback gRPC ÷ the in-process engine, at batch
 *     1, 8 and 32 images (rounds alternate between them): one engine on the calling
 *     thread (what each worker runs; the ratio #17 asks for), and also the engine on
 *     lanes (lanes.ts, one per core: what `switchyard generate` runs);
 *  2. throughput of step batching ÷ one-request-at-a-time under the same offered load
 *     (Poisson arrivals, same seed), with p50/p99 request latency of both;
 *  3. bytes moved between workers per generated image.
 *
 *   npm run bench:runtime -- [--rounds 5] [--requests 240] [--rate 40] [--steps 10] [--batches 1,8,32]
 *                             [--worker-env SWITCHYARD_EXPERT_BUDGET=100%,...] [--skip-load]
 * Needs nats-server (the workers are real processes).
 */
import { parseArgs } from "node:util";
import { createNatsBus, natsServerAvailable } from "@switchyard/bus";
import { contiguousPlan, expertsOf } from "@switchyard/contract";
import { createClient } from "@switchyard/client";
import { type ProcessCluster, startProcessCluster } from "@switchyard/cluster";
import { createEngine, createLaneEngine } from "@switchyard/engine";
import { BUNDLED_MODEL_DIR, createOnnxModel } from "@switchyard/model";
import type { TickItemMsg } from "@switchyard/proto";
import { createRng, gaussianNoise } from "@switchyard/sampler";
import { microBatchesFor } from "@switchyard/scheduler/internal";
import { median, percentile, table } from "./stats";
import { bytesMoved, workerClients } from "./worker-traffic";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    // A load that saturates both schedulers, long enough that the ratio compares
    // capacities: with 80 requests a quarter of the batching run was its ramp (ticks
    // growing as requests arrive) and drain (ticks shrinking as they finish).
    requests: { type: "string", default: "240" },
    rate: { type: "string", default: "40" },
    steps: { type: "string", default: "10" },
    batches: { type: "string", default: "1,8,32" },
    "worker-env": { type: "string", default: "" },
    "skip-load": { type: "boolean", default: false },
    /** micro-batches per home; "auto": as the scheduler decides (microBatchesFor) */
    micro: { type: "string", default: "auto" },
  },
});
/** Extra worker settings, e.g. --worker-env SWITCHYARD_EXPERT_BUDGET=100%. */
const workerEnv: Record<string, string> = Object.fromEntries(
  flags["worker-env"]!.split(",").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);
const rounds = Number(flags.rounds);
const P = 784;

async function stepLatency(cluster: ProcessCluster, prefix: string): Promise<void> {
  const bus = await createNatsBus({ servers: cluster.nats, name: "bench" });
  const clients = await workerClients(bus, prefix);
  const ids = ["worker-0", "worker-1"];
  const parts = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
  const engine = createEngine({ parts });
  const lanes = await createLaneEngine({ dir: BUNDLED_MODEL_DIR });
  const m = parts.manifest;
  const plan = contiguousPlan(ids, m.architecture.numLayers, m.moe.numExperts, 1000);
  await Promise.all(ids.map((w) => clients.setExperts(w, expertsOf(plan, w))));
  const rows: (string | number)[][] = [];
  let tick = 1_000_000;
  for (const B of flags.batches!.split(",").map(Number)) {
    const items: TickItemMsg[] = Array.from({ length: B }, (_, i) => ({ requestId: `b${i}`, imageIndex: 0, x: gaussianNoise(3, i, P), t: 0.5, label: i % 10, guidance: 2 }));
    const homes = B === 1 || process.env.ONE_HOME ? ["worker-0"] : ids;
    const split = homes.map((_, h) => items.filter((_, i) => i % homes.length === h));
    const micro = flags.micro === "auto" ? microBatchesFor(split.map((s) => s.length), ids.length) : Number(flags.micro);
    const dist = async () => {
      const t0 = performance.now();
      const t = ++tick;
      const rs = await Promise.all(homes.map((h, k) => clients.runTick(h, { tick: t, items: split[k]!, homes, planVersion: plan.version, owners: plan.owners, microBatches: micro })));
      if (process.env.BENCH_VERBOSE) console.log(`  B=${B} ` + rs.map((r, k) => `${homes[k]}: dense ${r.denseMs.toFixed(1)} ms, experts ${r.expertMs.toFixed(1)} ms`).join("; "));
      return performance.now() - t0;
    };
    const local = (e: Pick<typeof engine, "forward">) => async () => {
      const t0 = performance.now();
      await e.forward(items.map((it) => ({ x: it.x, t: it.t, label: it.label, guidance: it.guidance })));
      return performance.now() - t0;
    };
    const runs = [dist, local(engine), local(lanes)];
    for (const run of runs) await run();
    const times: number[][] = runs.map(() => []);
    for (let r = 0; r < rounds; r++) for (const [k, run] of runs.entries()) for (let i = 0; i < 3; i++) times[k]!.push(await run());
    const [d, l, ln] = times.map(median) as [number, number, number];
    rows.push([B, d.toFixed(1), l.toFixed(1), ln.toFixed(1), (d / l).toFixed(3), (d / ln).toFixed(3)]);
  }
  console.log("# step latency: 2 workers over loopback gRPC vs the in-process engine (guidance 2: 2 rows/image; medians)");
  console.log(`# in-process: one engine on this thread (as each worker runs); lanes: the engine on ${lanes.lanes} lanes (lanes.ts)`);
  console.log(table(["batch", "2 workers ms", "in-process ms", "in-process lanes ms", "ratio", "ratio to lanes"], rows));
  clients.close();
  await lanes.close();
  await parts.close();
  await bus.close();
}

interface LoadResult {
  throughput: number;
  p50: number;
  p99: number;
  images: number;
  wallS: number;
}

async function offeredLoad(address: string): Promise<LoadResult> {
  const n = Number(flags.requests);
  const rate = Number(flags.rate);
  const rng = createRng(42);
  const client = createClient({ address });
  const lat: number[] = [];
  let images = 0;
  const t0 = performance.now();
  let at = 0;
  const runs: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    at += -Math.log(1 - rng.next()) / rate; // Poisson arrivals, seconds
    const delay = t0 + at * 1000 - performance.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const start = performance.now();
    runs.push(
      client.generateImages({ label: i % 10, count: 1 + (i % 3), steps: Number(flags.steps), sampler: "euler", guidance: 2, seed: i }).then((r) => {
        lat.push(performance.now() - start);
        images += r.images.length;
      }),
    );
  }
  await Promise.all(runs);
  const wallS = (performance.now() - t0) / 1000;
  client.close();
  return { throughput: n / wallS, p50: percentile(lat, 50), p99: percentile(lat, 99), images, wallS };
}

async function main(): Promise<void> {
  if (!natsServerAvailable()) {
    console.log("nats-server is not installed: this benchmark runs real worker processes over NATS");
    return;
  }
  const prefix = "bench";
  // The workers run with their defaults (as `switchyard up` starts them), as the in-process
  // engine does; --worker-env overrides. Until #17 the bench pinned them to one dense
  // thread each, which measured ~5 % slower than the default 2 (3 alternating runs each,
  // 2 workers ÷ in-process 1.170/1.171/1.149 vs 1.083/1.100/1.113).
  const batched = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: prefix, env: { ...workerEnv } });
  try {
    await stepLatency(batched, prefix);
    if (flags["skip-load"]) return;
    const bus = await createNatsBus({ servers: batched.nats, name: "bench-stats" });
    const clients = await workerClients(bus, prefix);
    const before = await bytesMoved(clients, ["worker-0", "worker-1"]);
    const b = await offeredLoad(batched.address);
    const moved = (await bytesMoved(clients, ["worker-0", "worker-1"])) - before;
    clients.close();
    await bus.close();
    await batched.stop();
    const seq = await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: prefix, env: { SWITCHYARD_MAX_REQUESTS_PER_TICK: "1", ...workerEnv } });
    const s = await offeredLoad(seq.address);
    await seq.stop();
    console.log(`\n# same offered load: ${flags.requests} requests (1-3 images, ${flags.steps} euler steps, guidance 2), Poisson at ${flags.rate}/s`);
    console.log(
      table(
        ["scheduler", "req/s", "p50 ms", "p99 ms", "wall s"],
        [
          ["step batching", b.throughput.toFixed(2), b.p50.toFixed(0), b.p99.toFixed(0), b.wallS.toFixed(1)],
          ["one at a time", s.throughput.toFixed(2), s.p50.toFixed(0), s.p99.toFixed(0), s.wallS.toFixed(1)],
        ],
      ),
    );
    console.log(`throughput ratio (batching ÷ one-at-a-time): ${(b.throughput / s.throughput).toFixed(2)}×`);
    console.log(`\n# bytes moved between workers: ${(moved / b.images / 1024).toFixed(1)} KiB per generated image (${b.images} images, ${(moved / 1048576).toFixed(1)} MiB, ${flags.steps} steps each)`);
  } finally {
    await batched.stop().catch(() => undefined);
  }
}

await main();
