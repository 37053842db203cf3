import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startProcessCluster } from "@switchyard/cluster";
import { runLoadtestCommand, summarySchema } from "@switchyard/loadtest";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";

/**
 * The harness checked against a peer: perf_analyzer (Triton's) and `switchyard loadtest`
 * drive the same KServe v2 gRPC closed-loop load (same concurrency, one image of label 0
 * per request, 4 steps) against one cluster, alternately, and their throughput and p50
 * are printed side by side with the ratio.
 *
 *   npm run bench:loadtest [-- --server HOST:PORT] [--concurrencies 1,2] [--rounds 2]
 *
 * perf_analyzer comes from .ci/install-tools.sh (export PATH="$(bash .ci/install-tools.sh --bin):$PATH").
 */
const run = promisify(execFile);
const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const concurrencies = (arg("concurrencies") ?? "1,2").split(",").map(Number);
const rounds = Number(arg("rounds") ?? 2);
const STEPS = 4;
const dir = mkdtempSync(join(tmpdir(), "vs-pa-"));

const cluster = arg("server") ? undefined : await startProcessCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, subjectPrefix: `pa${process.pid}` });
const server = arg("server") ?? cluster!.address;
console.log(`server ${server}; KServe v2 gRPC ModelInfer, closed loop, 1 image (LABEL 0) × ${STEPS} steps per request; ${rounds} rounds, alternating`);

async function perfAnalyzer(c: number, i: number): Promise<{ rps: number; p50: number }> {
  const csv = join(dir, `pa-${c}-${i}.csv`);
  await run("perf_analyzer", [
    "-m", "dit-moe-fmnist", "-i", "grpc", "-u", server, "--shape", "LABEL:1,1", "--input-data", "zero", "--request-parameter", `steps:${STEPS}:int`,
    "--concurrency-range", `${c}:${c}`, "--measurement-interval", "8000", "--stability-percentage", "10", "--max-trials", "6", "-f", csv,
  ], { maxBuffer: 16 << 20 });
  const [head, row] = readFileSync(csv, "utf8").trim().split("\n").map((l) => l.split(","));
  const col = (n: string) => Number(row![head!.indexOf(n)]);
  return { rps: col("Inferences/Second"), p50: col("p50 latency") / 1000 };
}

async function harness(c: number, i: number): Promise<{ rps: number; p50: number }> {
  const out = join(dir, `lt-${c}-${i}`);
  await runLoadtestCommand({ server, protocol: "kserve", concurrency: c, duration: 28, warmup: 4, steps: STEPS, count: 1, label: 0, metrics: "off", out, quiet: true, "no-charts": true }, ["run"], () => undefined);
  const s = summarySchema.parse(JSON.parse(readFileSync(join(out, "summary.json"), "utf8")));
  return { rps: s.throughput.imagesPerS, p50: s.latencyMs.total.p50 };
}

try {
  // Warm the cluster once (first ticks at a new size are slow).
  await harness(1, -1);
  const rows: string[] = ["concurrency  round   perf_analyzer infer/s  p50 ms   switchyard loadtest infer/s  p50 ms   throughput ratio  p50 ratio"];
  for (const c of concurrencies) {
    for (let i = 0; i < rounds; i++) {
      const pa = await perfAnalyzer(c, i);
      const lt = await harness(c, i);
      rows.push(`${String(c).padStart(11)}  ${String(i + 1).padStart(5)}   ${pa.rps.toFixed(2).padStart(21)}  ${pa.p50.toFixed(0).padStart(6)}   ${lt.rps.toFixed(2).padStart(27)}  ${lt.p50.toFixed(0).padStart(6)}   ${(lt.rps / pa.rps).toFixed(3).padStart(16)}  ${(lt.p50 / pa.p50).toFixed(3).padStart(9)}`);
      console.log(rows.at(-1));
    }
  }
  console.log("\n" + rows.join("\n"));
} finally {
  await cluster?.stop();
}
