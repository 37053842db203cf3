import { fork } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, SwitchyardError } from "@switchyard/errors";
import { ARRIVAL_KINDS, type ArrivalKind, arrivalSchedule } from "./arrivals";
import { cdfChart, renderChart, sweepCharts, timeSeriesChart } from "./charts";
import { compareSummaries, formatDeltas } from "./compare";
import { PROTOCOLS, type Protocol, createDriver } from "./drivers";
import { type Histogram, cdf, decode, encode, merge } from "./histogram";
import { sweepCsv, writeRunFiles } from "./output";
import { type LoadMode, type RequestRecord, type RunHistograms, type RunResult, runLoad } from "./runner";
import { startScraper } from "./scrape";
import { type ClassSlo, type Summary, summarize, summarySchema } from "./summary";
import { type Workload, loadWorkload, parseTrace, parseWorkload, requestStream } from "./workload";

export const LOADTEST_HELP = `switchyard loadtest <run|sweep|compare> [options]
  run      one load level; writes summary.json, requests.csv, timeseries.csv and charts to --out
  sweep    several levels (--rates 1,2,4 or 1:8:1, --concurrencies 1:8:2), or --search-rate LO:HI
           for the highest rate meeting the SLO; writes sweep.csv (perf_analyzer's columns) and charts
  compare  A B [--tolerance 5]: per-figure deltas between two runs (directories or summary.json)

Load (run):
  --server HOST:PORT     gateway (required)         --protocol native|kserve|kserve-stream (native)
  --rate R               open loop, requests/s      --arrival poisson|constant|gamma (poisson)
  --burstiness B         gamma shape (1 = Poisson, < 1 burstier)
  --concurrency C        closed loop instead        --trace FILE.jsonl   replay {offsetMs, steps, count, label, …}
  --duration S (30)      --requests N (cap)         --warmup S (0)  --cooldown S (0): not measured
  --window S (5)         --stability PCT (10)       measurement windows; stable = last 3 within PCT
  --until-stable         stop sending once stable (requests in flight finish), within --duration
  --max-inflight N       client-side cap (open loop; waiting time counts)
  --processes N (1)      load processes on this host, histograms merged
  --seed N (1)           --out DIR (required)       --no-charts   --quiet
Requests: --workload FILE.json ({"classes":[{name, weight, steps, count, sampler, guidance, guidanceTMin,
  guidanceTMax, reuseThreshold, label, priority, previewInterval, deadlineMs, slo:{totalMs|firstProgressMs|factor}}]}),
  or one class from --steps (20) --count (1) --label (random) --sampler --guidance (model defaults)
  --guidance-t-min --guidance-t-max --reuse-threshold (off) --priority --preview-interval --deadline-ms
SLO (one class): --slo-total-ms MS  --slo-first-progress-ms MS  --slo-factor K (K × unloaded latency,
  measured first with --unloaded-requests N (3) one at a time)
Connection: --tls  --ca FILE  --token T  --model NAME (dit-moe-fmnist)
Server figures: --metrics URL (default http://HOST:9464/metrics; "off")  --metrics-token T`;

type Flags = Record<string, unknown>;

const str = (f: Flags, k: string) => (typeof f[k] === "string" ? (f[k] as string) : f[k] === undefined ? undefined : String(f[k]));
function num(f: Flags, k: string, opts: { min?: number; max?: number; int?: boolean } = {}): number | undefined {
  const v = f[k];
  if (v === undefined) return undefined;
  const n = typeof v === "number" ? v : Number(v);
  const bad = !Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max);
  if (bad) throw new SwitchyardError(`--${k} ${JSON.stringify(v)} must be ${opts.int ? "an integer" : "a number"}${opts.min !== undefined ? ` >= ${opts.min}` : ""}${opts.max !== undefined ? ` and <= ${opts.max}` : ""}`, Code.InvalidArgument, { field: k });
  return n;
}

/** The load's workload: a file, or one class from flags. */
export function workloadOf(f: Flags): Workload {
  const file = str(f, "workload");
  if (file) return loadWorkload(file);
  const slo = {
    ...(f["slo-total-ms"] !== undefined ? { totalMs: num(f, "slo-total-ms", { min: 1 }) } : {}),
    ...(f["slo-first-progress-ms"] !== undefined ? { firstProgressMs: num(f, "slo-first-progress-ms", { min: 1 }) } : {}),
    ...(f["slo-factor"] !== undefined ? { factor: num(f, "slo-factor", { min: 1 }) } : {}),
  };
  const label = str(f, "label");
  return parseWorkload({
    classes: [{
      name: "default",
      ...(f.steps !== undefined ? { steps: num(f, "steps") } : {}), ...(f.count !== undefined ? { count: num(f, "count") } : {}),
      ...(f.sampler !== undefined ? { sampler: str(f, "sampler") } : {}), ...(f.guidance !== undefined ? { guidance: num(f, "guidance") } : {}),
      ...(f["guidance-t-min"] !== undefined ? { guidanceTMin: num(f, "guidance-t-min") } : {}), ...(f["guidance-t-max"] !== undefined ? { guidanceTMax: num(f, "guidance-t-max") } : {}),
      ...(f["reuse-threshold"] !== undefined ? { reuseThreshold: num(f, "reuse-threshold") } : {}),
      ...(label !== undefined ? { label: label === "random" ? "random" : num(f, "label") } : {}),
      ...(f.priority !== undefined ? { priority: num(f, "priority") } : {}), ...(f["preview-interval"] !== undefined ? { previewInterval: num(f, "preview-interval") } : {}),
      ...(f["deadline-ms"] !== undefined ? { deadlineMs: num(f, "deadline-ms") } : {}),
      ...(Object.keys(slo).length ? { slo } : {}),
    }],
  }, "request flags");
}

interface LoadPlan {
  readonly mode: LoadMode;
  readonly describe: Record<string, unknown>;
}

function planOf(f: Flags, durationS: number, seed: number): LoadPlan {
  const rate = num(f, "rate", { min: 0.001 });
  const concurrency = num(f, "concurrency", { min: 1, max: 100_000, int: true });
  const trace = str(f, "trace");
  if ([rate, concurrency, trace].filter((x) => x !== undefined).length !== 1) {
    throw new SwitchyardError("give exactly one of --rate R (open loop), --concurrency C (closed loop) or --trace FILE", Code.InvalidArgument, { field: "rate" });
  }
  if (trace) return { mode: { kind: "trace", entries: parseTrace(readFileSync(trace, "utf8"), `trace ${trace}`) }, describe: { mode: "trace", trace } };
  if (concurrency !== undefined) return { mode: { kind: "closed", concurrency }, describe: { mode: "closed", concurrency } };
  const arrival = (str(f, "arrival") ?? "poisson") as ArrivalKind;
  if (!ARRIVAL_KINDS.includes(arrival)) throw new SwitchyardError(`--arrival ${JSON.stringify(arrival)} must be one of ${ARRIVAL_KINDS.join(", ")}`, Code.InvalidArgument, { field: "arrival" });
  const burstiness = num(f, "burstiness", { min: 0.001 });
  return {
    mode: { kind: "open", offsetsMs: arrivalSchedule({ kind: arrival, rate: rate!, durationS, seed, ...(burstiness !== undefined ? { burstiness } : {}) }) },
    describe: { mode: "open", rate, arrival, ...(burstiness !== undefined ? { burstiness } : {}) },
  };
}

interface Common {
  server: string;
  protocol: Protocol;
  model: string;
  tls?: boolean | { ca: Buffer };
  token?: string;
  durationS: number;
  warmupS: number;
  cooldownS: number;
  seed: number;
}

function commonOf(f: Flags): Common {
  const server = str(f, "server");
  if (!server) throw new SwitchyardError("--server HOST:PORT is required (a gateway's gRPC address)", Code.InvalidArgument, { field: "server" });
  const protocol = (str(f, "protocol") ?? "native") as Protocol;
  if (!PROTOCOLS.includes(protocol)) throw new SwitchyardError(`--protocol ${JSON.stringify(protocol)} must be one of ${PROTOCOLS.join(", ")}`, Code.InvalidArgument, { field: "protocol" });
  const ca = str(f, "ca");
  const durationS = num(f, "duration", { min: 0.1 }) ?? 30;
  const warmupS = num(f, "warmup", { min: 0 }) ?? 0;
  const cooldownS = num(f, "cooldown", { min: 0 }) ?? 0;
  if (warmupS + cooldownS >= durationS) throw new SwitchyardError(`--warmup ${warmupS} + --cooldown ${cooldownS} must be shorter than --duration ${durationS}`, Code.InvalidArgument, { field: "warmup" });
  return {
    server, protocol, model: str(f, "model") ?? "dit-moe-fmnist",
    ...(ca ? { tls: { ca: readFileSync(ca) } } : f.tls === true ? { tls: true } : {}),
    ...(str(f, "token") ? { token: str(f, "token")! } : {}),
    durationS, warmupS, cooldownS, seed: num(f, "seed", { min: 0, int: true }) ?? 1,
  };
}

/** Unloaded latency per class with a factor SLO: N requests of it, one at a time; the median. */
async function unloadedLatencies(c: Common, w: Workload, n: number, log: (m: string) => void): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const classes = w.classes.filter((k) => k.slo?.factor !== undefined);
  if (classes.length === 0) return out;
  const driver = createDriver(c);
  try {
    for (const k of classes) {
      const next = requestStream({ classes: [k] }, c.seed + 7);
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const r = await driver.send(next(), { accepted: () => undefined, progress: () => undefined }, new AbortController().signal);
        if (r.status !== "ok") throw new SwitchyardError(`unloaded request of class ${k.name} failed: ${r.status} ${r.message ?? ""}`, Code.Unavailable);
        ms.push(performance.now() - t0);
      }
      ms.sort((a, b) => a - b);
      out[k.name] = ms[Math.floor(ms.length / 2)]!;
      log(`unloaded latency of class ${k.name}: ${out[k.name]!.toFixed(0)} ms (median of ${n}); SLO ${k.slo!.factor} × that = ${(k.slo!.factor! * out[k.name]!).toFixed(0)} ms`);
    }
  } finally {
    driver.close();
  }
  return out;
}

interface ChildResult {
  records: RequestRecord[];
  histograms: Record<keyof RunHistograms, string>;
  measuredS: number;
  startedAt: string;
  durationMs: number;
  interrupted: boolean;
}

async function runOnce(f: Flags, c: Common, workload: Workload, signal: AbortSignal, log: (m: string) => void, quiet: boolean, shard?: { index: number; of: number; startAtMs: number }): Promise<RunResult & { describe: Record<string, unknown> }> {
  const plan = planOf(f, c.durationS, c.seed);
  const processes = shard ? 1 : (num(f, "processes", { min: 1, max: 64, int: true }) ?? 1);
  if (processes > 1) {
    // Several load processes on this host: each sends its share, histograms merged.
    const dir = join(tmpdir(), `switchyard-loadtest-${process.pid}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    const startAtMs = Date.now() + 3000;
    const children = Array.from({ length: processes }, (_, i) => {
      const out = join(dir, `child-${i}.json`);
      const cfg = join(dir, `flags-${i}.json`);
      const childFlags = { ...f, ...(plan.mode.kind === "closed" ? { concurrency: Math.ceil(plan.mode.concurrency / processes) } : {}), processes: 1 };
      writeFileSync(cfg, JSON.stringify({ flags: childFlags, shard: { index: i, of: plan.mode.kind === "closed" ? 1 : processes, startAtMs }, out }));
      const p = fork(process.argv[1]!, ["loadtest", "_child", cfg], { execArgv: process.execArgv, stdio: "inherit" });
      signal.addEventListener("abort", () => p.kill("SIGINT"), { once: true });
      return new Promise<ChildResult>((resolve, reject) =>
        p.once("exit", (code) => (code === 0 ? resolve(JSON.parse(readFileSync(out, "utf8")) as ChildResult) : reject(new SwitchyardError(`load process ${i} exited with ${code}`, Code.Internal)))),
      );
    });
    const results = await Promise.all(children);
    const keys = ["total", "accepted", "firstProgress", "interStep", "clientQueue"] as const;
    const histograms = Object.fromEntries(keys.map((k) => [k, merge(results.map((r) => decode(r.histograms[k])))])) as unknown as RunHistograms;
    log(`merged ${processes} load processes`);
    return {
      startedAt: results[0]!.startedAt, durationMs: Math.max(...results.map((r) => r.durationMs)), interrupted: results.some((r) => r.interrupted), stoppedStable: false, measuredS: Math.max(...results.map((r) => r.measuredS)),
      records: results.flatMap((r) => r.records).sort((a, b) => a.intendedMs - b.intendedMs).map((r, index) => ({ ...r, index })),
      histograms, describe: { ...plan.describe, processes },
    };
  }
  const driver = createDriver(c);
  try {
    const maxRequests = num(f, "requests", { min: 1, int: true });
    const maxInflight = num(f, "max-inflight", { min: 1, int: true });
    const r = await runLoad({
      mode: plan.mode, driver, next: requestStream(workload, c.seed), durationS: c.durationS, warmupS: c.warmupS, cooldownS: c.cooldownS, signal,
      ...(maxRequests !== undefined ? { maxRequests } : {}), ...(maxInflight !== undefined ? { maxInflight } : {}),
      ...(f["until-stable"] === true ? { untilStable: { windowS: num(f, "window", { min: 0.1 }) ?? 5, pct: num(f, "stability", { min: 0 }) ?? 10 } } : {}),
      ...(shard ? { shard: { index: shard.index, of: shard.of }, startAtMs: shard.startAtMs } : {}),
      ...(!quiet
        ? {
            // One live line on a terminal; a line every 5 s otherwise (logs, CI).
            onProgress: (p) => {
              const line = `[${p.elapsedS.toFixed(0).padStart(4)} s] sent ${p.sent} (${p.sentPerS.toFixed(1)}/s), in flight ${p.inflight}, done ${p.completed}, errors ${p.errors}, p50 ${p.p50Ms.toFixed(0)} ms`;
              if (process.stderr.isTTY) process.stderr.write(`\r${line}   `);
              else if (Math.round(p.elapsedS) % 5 === 0) process.stderr.write(`${line}\n`);
            },
          }
        : {}),
    });
    if (!quiet && process.stderr.isTTY) process.stderr.write("\n");
    return { ...r, describe: plan.describe };
  } finally {
    driver.close();
  }
}

function metricsUrlOf(f: Flags, server: string): string | undefined {
  const m = str(f, "metrics");
  if (m === "off") return undefined;
  return m ?? `http://${server.replace(/:\d+$/, "")}:9464/metrics`;
}

/** One load level: run it, scrape the server, summarize, write the files and charts. */
export async function runLevel(f: Flags, outDir: string, signal: AbortSignal, log: (m: string) => void): Promise<{ summary: Summary; total: Histogram }> {
  const c = commonOf(f);
  const quiet = f.quiet === true;
  const workload = workloadOf(f);
  const slos: Record<string, ClassSlo> = {};
  const unloaded = await unloadedLatencies(c, workload, num(f, "unloaded-requests", { min: 1, int: true }) ?? 3, log);
  for (const k of workload.classes) if (k.slo) slos[k.name] = { ...k.slo, ...(unloaded[k.name] !== undefined ? { unloadedMs: unloaded[k.name] } : {}) };
  const metricsUrl = metricsUrlOf(f, c.server);
  const scraper = metricsUrl ? startScraper(metricsUrl, { ...(str(f, "metrics-token") ? { token: str(f, "metrics-token")! } : {}) }) : undefined;
  await scraper?.before;
  scraper?.start();
  const r = await runOnce(f, c, workload, signal, log, quiet);
  const server = await scraper?.stop();
  const summary = summarize(
    { records: r.records, histograms: r.histograms, measuredS: r.measuredS, slos, windowS: num(f, "window", { min: 0.1 }) ?? 5, stabilityPct: num(f, "stability", { min: 0 }) ?? 10 },
    { server: c.server, protocol: c.protocol, model: c.model, ...r.describe, ...(r.stoppedStable ? { stoppedStable: true } : {}), durationS: c.durationS, warmupS: c.warmupS, cooldownS: c.cooldownS, seed: c.seed, workload: workload.classes.map((k) => k.name) },
    r,
  );
  if (server) (summary as { server?: unknown }).server = server;
  const ts = writeRunFiles(outDir, summary, r.records, r.durationMs);
  if (f.charts !== false && f["no-charts"] !== true) {
    await renderChart(cdfChart([{ name: String(r.describe.mode === "closed" ? `concurrency ${r.describe.concurrency}` : r.describe.mode === "open" ? `${r.describe.rate}/s ${r.describe.arrival}` : "trace"), points: cdf(r.histograms.total) }], "Latency CDF"), join(outDir, "latency-cdf"));
    await renderChart(timeSeriesChart(ts, "Per second"), join(outDir, "timeseries"));
  }
  return { summary, total: r.histograms.total };
}

export function formatSummary(s: Summary): string {
  const l = s.latencyMs;
  const f = (x: number) => x.toFixed(x >= 100 ? 0 : 1);
  const lines = [
    `requests: ${s.requests.measured} measured (${s.requests.sent} sent), ${s.requests.ok} ok, ${s.requests.failed} failed${Object.keys(s.errors).length ? ` ${JSON.stringify(s.errors)}` : ""}${s.interrupted ? " — interrupted" : ""}`,
    `throughput: ${s.throughput.requestsPerS.toFixed(2)} req/s, ${s.throughput.imagesPerS.toFixed(2)} images/s, ${s.throughput.imageStepsPerS.toFixed(1)} image-steps/s`,
    `goodput: ${s.goodput.requestsPerS.toFixed(2)} req/s within SLO (${(s.goodput.attainment * 100).toFixed(1)} % attainment)`,
    `latency (ms, from intended send)   p50 ${f(l.total.p50)}  p90 ${f(l.total.p90)}  p95 ${f(l.total.p95)}  p99 ${f(l.total.p99)}  p99.9 ${f(l.total["p99.9"])}  max ${f(l.total.max)}`,
  ];
  if (l.accepted.count) lines.push(`time to accepted p50 ${f(l.accepted.p50)} p99 ${f(l.accepted.p99)}; to first progress p50 ${f(l.firstProgress.p50)} p99 ${f(l.firstProgress.p99)}; between steps p50 ${f(l.interStep.p50)} p99 ${f(l.interStep.p99)}`);
  lines.push(`client queue p50 ${f(l.clientQueue.p50)} p99 ${f(l.clientQueue.p99)} ms; ${s.stable ? "stable" : "not stable"} over the last 3 of ${s.windows.length} windows`);
  const g = (s.server as { gauges?: Record<string, { mean: number; max: number }>; counters?: Record<string, number> } | undefined);
  if (g?.gauges?.switchyard_scheduler_queued_requests) lines.push(`server: queued mean ${g.gauges.switchyard_scheduler_queued_requests.mean.toFixed(1)} max ${g.gauges.switchyard_scheduler_queued_requests.max}, ticks ${g.counters?.switchyard_scheduler_ticks_total ?? 0}, tick rows mean ${(g.gauges.switchyard_scheduler_last_tick_rows?.mean ?? 0).toFixed(0)}, worker bytes sent ${(((g.counters?.switchyard_worker_bytes_sent_total ?? 0) / 1e6)).toFixed(1)} MB`);
  return lines.join("\n");
}

function levelsOf(spec: string, what: string): number[] {
  const range = /^(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?$/.exec(spec);
  const xs = range
    ? (() => {
        const [a, b, step] = [Number(range[1]), Number(range[2]), Number(range[3] ?? 1)];
        const out: number[] = [];
        for (let x = a; x <= b + 1e-9 && out.length < 1000; x += step) out.push(Number(x.toFixed(6)));
        return out;
      })()
    : spec.split(",").map(Number);
  if (xs.length === 0 || xs.some((x) => !(x > 0))) throw new SwitchyardError(`--${what} ${JSON.stringify(spec)} must be a list (1,2,4) or a range (1:8 or 1:8:2) of numbers > 0`, Code.InvalidArgument, { field: what });
  return xs;
}

async function runSweep(f: Flags, out: string, signal: AbortSignal, log: (m: string) => void): Promise<void> {
  const rates = str(f, "rates");
  const conc = str(f, "concurrencies");
  const search = str(f, "search-rate");
  if ([rates, conc, search].filter(Boolean).length !== 1) throw new SwitchyardError("give one of --rates LIST, --concurrencies LIST or --search-rate LO:HI", Code.InvalidArgument, { field: "rates" });
  const levels: { load: number; rate?: number; concurrency?: number; summary: Summary; total: Histogram }[] = [];
  const base = { ...f };
  delete base.rates;
  delete base.concurrencies;
  delete base["search-rate"];
  const level = async (load: number, kind: "rate" | "concurrency") => {
    const dir = join(out, `${kind}-${load}`);
    log(`--- ${kind} ${load}`);
    const { summary: s, total } = await runLevel({ ...base, [kind]: load }, dir, signal, log);
    log(formatSummary(s));
    levels.push({ load, [kind]: load, summary: s, total });
    return s;
  };
  if (search) {
    // The highest rate whose SLO attainment meets the target: bisection between LO and HI.
    const m = /^(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)$/.exec(search);
    const [lo, hi] = m ? [Number(m[1]), Number(m[2])] : [undefined, undefined];
    if (lo === undefined || hi === undefined || !(lo > 0) || !(hi > lo)) throw new SwitchyardError(`--search-rate ${search} must be LO:HI with HI > LO`, Code.InvalidArgument, { field: "search-rate" });
    const target = num(f, "target", { min: 0, max: 1 }) ?? 0.9;
    const steps = num(f, "search-steps", { min: 1, max: 20, int: true }) ?? 5;
    let ok = 0;
    let a = lo;
    let b = hi;
    if ((await level(lo, "rate")).goodput.attainment < target) log(`even ${lo}/s misses the SLO (attainment below ${target})`);
    else {
      ok = lo;
      if ((await level(hi, "rate")).goodput.attainment >= target) ok = hi;
      else
        for (let i = 0; i < steps && !signal.aborted; i++) {
          const mid = Number(((a + b) / 2).toFixed(3));
          if ((await level(mid, "rate")).goodput.attainment >= target) {
            ok = mid;
            a = mid;
          } else b = mid;
        }
    }
    writeFileSync(join(out, "search.json"), JSON.stringify({ target, highestRateMeetingSlo: ok, levels: levels.map((l) => ({ rate: l.load, attainment: l.summary.goodput.attainment, goodputPerS: l.summary.goodput.requestsPerS, p99Ms: l.summary.latencyMs.total.p99 })) }, null, 2) + "\n");
    log(`highest rate meeting the SLO (attainment ≥ ${target}): ${ok ? `${ok}/s` : "none in the range"}`);
  } else {
    const kind = rates ? "rate" : "concurrency";
    for (const x of levelsOf((rates ?? conc)!, rates ? "rates" : "concurrencies")) {
      if (signal.aborted) break;
      await level(x, kind);
    }
  }
  levels.sort((x, y) => x.load - y.load);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "sweep.csv"), sweepCsv(levels));
  const title = rates || search ? "offered rate (requests/s)" : "concurrency";
  const charts = sweepCharts(levels, title);
  await renderChart(charts.latency, join(out, "latency-vs-load"));
  await renderChart(charts.throughput, join(out, "throughput-vs-load"));
  await renderChart(cdfChart(levels.map((l) => ({ name: `${l.load}`, points: cdf(l.total) })), `Latency CDF per ${title}`), join(out, "latency-cdf"));
}

function readSummary(path: string): Summary {
  const file = statSync(path).isDirectory() ? join(path, "summary.json") : path;
  return summarySchema.parse(JSON.parse(readFileSync(file, "utf8")));
}

export async function runLoadtestCommand(flags: Flags, positionals: string[], log: (m: string) => void = (m) => console.log(m)): Promise<void> {
  const [sub, ...rest] = positionals;
  const ac = new AbortController();
  const onInt = () => {
    log("\ninterrupted: writing what was measured");
    ac.abort();
  };
  if (sub === "_child") {
    // A load process of a multi-process run (see runOnce).
    const { flags: f, shard, out } = JSON.parse(readFileSync(rest[0]!, "utf8")) as { flags: Flags; shard: { index: number; of: number; startAtMs: number }; out: string };
    process.once("SIGINT", onInt);
    const r = await runOnce(f, commonOf(f), workloadOf(f), ac.signal, () => undefined, true, shard);
    const keys = ["total", "accepted", "firstProgress", "interStep", "clientQueue"] as const;
    const res: ChildResult = { records: r.records, histograms: Object.fromEntries(keys.map((k) => [k, encode(r.histograms[k])])) as ChildResult["histograms"], startedAt: r.startedAt, durationMs: r.durationMs, interrupted: r.interrupted, measuredS: r.measuredS };
    writeFileSync(out, JSON.stringify(res));
    return;
  }
  if (sub === "compare") {
    if (rest.length !== 2) throw new SwitchyardError("loadtest compare needs two runs: A B (directories or summary.json files)", Code.InvalidArgument, { field: "compare" });
    const tol = num(flags, "tolerance", { min: 0 }) ?? 5;
    log(formatDeltas(compareSummaries(readSummary(rest[0]!), readSummary(rest[1]!), tol), [rest[0]!.split("/").filter(Boolean).pop()!.slice(0, 10), rest[1]!.split("/").filter(Boolean).pop()!.slice(0, 10)], tol));
    return;
  }
  if (sub !== "run" && sub !== "sweep") throw new SwitchyardError(`loadtest ${sub === undefined ? "needs a subcommand" : `${JSON.stringify(sub)} is not a subcommand`}: run, sweep or compare`, Code.InvalidArgument, { field: "subcommand" });
  const out = str(flags, "out");
  if (!out) throw new SwitchyardError("--out DIR is required (summary.json, requests.csv, charts go there)", Code.InvalidArgument, { field: "out" });
  process.once("SIGINT", onInt);
  try {
    if (sub === "run") {
      const { summary: s } = await runLevel(flags, out, ac.signal, log);
      log(formatSummary(s));
      log(`wrote ${out}/summary.json, requests.csv, timeseries.csv${flags["no-charts"] === true ? "" : ", latency-cdf.png/svg, timeseries.png/svg"}`);
    } else {
      await runSweep(flags, out, ac.signal, log);
      log(`wrote ${out}/sweep.csv, latency-vs-load.png, throughput-vs-load.png, latency-cdf.png and one directory per level`);
    }
  } finally {
    process.off("SIGINT", onInt);
  }
}
