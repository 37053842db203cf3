/**
 * The cost of observability, measured side by side: three 2-worker process clusters on
 * one NATS — instruments off (SWITCHYARD_METRICS_PORT=off on scheduler and workers:
 * no histograms, no wrappers), metrics on (the default), metrics and tracing on (OTLP
 * to a local sink) — take the same requests in turn, round after round, one at a time;
 * each round's mean latency of a configuration is divided by the "off" one's.
 *
 *   npm run bench:telemetry -- [--rounds 6] [--requests 6] [--count 8] [--steps 10]
 * Needs nats-server.
 */
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { startNatsServer } from "@switchyard/bus";
import { createClient } from "@switchyard/client";
import { type ProcessCluster, startProcessCluster } from "@switchyard/cluster";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";

const { values: flags } = parseArgs({ options: { rounds: { type: "string", default: "6" }, requests: { type: "string", default: "6" }, count: { type: "string", default: "8" }, steps: { type: "string", default: "10" } } });
const rounds = Number(flags.rounds);
const perRound = Number(flags.requests);
const params = { label: 3, count: Number(flags.count), steps: Number(flags.steps), seed: 1 };

// An OTLP receiver that accepts and discards (what a collector costs the services is the export itself).
let received = 0;
const sink = createServer((req, res) => {
  req.on("data", (d: Buffer) => (received += d.length));
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
});
await new Promise<void>((r) => sink.listen(0, "127.0.0.1", () => r()));
const endpoint = `http://127.0.0.1:${(sink.address() as { port: number }).port}`;

const nats = await startNatsServer();
const configs: { name: string; env: Record<string, string> }[] = [
  { name: "off", env: { SWITCHYARD_METRICS_PORT: "off" } },
  { name: "metrics", env: {} },
  { name: "metrics+tracing", env: { SWITCHYARD_OTLP_ENDPOINT: endpoint } },
];
const clusters: ProcessCluster[] = [];
try {
  for (const [i, c] of configs.entries()) clusters.push(await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, nats: nats.url, subjectPrefix: `tb${i}`, env: c.env }));
  const clients = clusters.map((c) => createClient({ address: c.address }));
  for (const cl of clients) for (let i = 0; i < 3; i++) await cl.generateImages(params); // warm
  const ratios: Record<string, number[]> = { metrics: [], "metrics+tracing": [] };
  const means: Record<string, number[]> = { off: [], metrics: [], "metrics+tracing": [] };
  for (let r = 0; r < rounds; r++) {
    const mean: Record<string, number> = {};
    // Rotate the order each round so that no configuration always goes first.
    for (let k = 0; k < configs.length; k++) {
      const i = (k + r) % configs.length;
      const t0 = performance.now();
      for (let j = 0; j < perRound; j++) await clients[i]!.generateImages(params);
      mean[configs[i]!.name] = (performance.now() - t0) / perRound;
    }
    for (const n of Object.keys(means)) means[n]!.push(mean[n]!);
    ratios.metrics!.push(mean.metrics! / mean.off!);
    ratios["metrics+tracing"]!.push(mean["metrics+tracing"]! / mean.off!);
    console.log(`round ${r + 1}: off ${mean.off!.toFixed(0)} ms, metrics ${mean.metrics!.toFixed(0)} ms (×${ratios.metrics!.at(-1)!.toFixed(3)}), metrics+tracing ${mean["metrics+tracing"]!.toFixed(0)} ms (×${ratios["metrics+tracing"]!.at(-1)!.toFixed(3)})`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`\nrequest latency, ${params.count} images × ${params.steps} steps, ${perRound} requests per configuration per round, ${rounds} rounds (medians):`);
  console.log(`  off              ${median(means.off!).toFixed(0)} ms`);
  console.log(`  metrics          ${median(means.metrics!).toFixed(0)} ms   ratio ${median(ratios.metrics!).toFixed(3)}   (goal < 1.02)`);
  console.log(`  metrics+tracing  ${median(means["metrics+tracing"]!).toFixed(0)} ms   ratio ${median(ratios["metrics+tracing"]!).toFixed(3)}   (goal < 1.05); ${(received / 1024).toFixed(0)} KiB of OTLP received`);
  for (const c of clients) c.close();
} finally {
  for (const c of clusters) await c.stop();
  await nats.stop();
  sink.close();
}
