import { setMaxListeners } from "node:events";
import type { Driver, Outcome } from "./drivers";
import { type Histogram, createHistogram, percentiles, recordMs } from "./histogram";
import { isStable, measurementWindows } from "./summary";
import type { RequestSpec } from "./workload";

/**
 * Runs a load: open loop (requests at their scheduled intended times), closed loop
 * (fixed concurrency) or a trace replay, against a driver. Every request is recorded;
 * latencies are taken from the intended send time (open loop and trace), so a stall of
 * the client or the server is measured, not hidden; the client-side queue time (sent −
 * intended) is recorded apart.
 */
export type LoadMode =
  | { readonly kind: "open"; readonly offsetsMs: readonly number[] }
  | { readonly kind: "closed"; readonly concurrency: number }
  | { readonly kind: "trace"; readonly entries: readonly { offsetMs: number; spec: RequestSpec }[] };

export interface RunOptions {
  readonly mode: LoadMode;
  readonly driver: Driver;
  /** The next request (open and closed loop). */
  readonly next: () => RequestSpec;
  /** Stop sending after this long, seconds. */
  readonly durationS: number;
  readonly maxRequests?: number;
  /** Requests whose intended start falls in the first `warmupS` or last `cooldownS` are not measured. */
  readonly warmupS?: number;
  readonly cooldownS?: number;
  /** In flight at most this many at once (the client queues the rest; open loop); default unlimited. */
  readonly maxInflight?: number;
  /** How long requests still in flight at the end may take, ms (default 60 s). */
  readonly graceMs?: number;
  /** Stops sending at once (Ctrl-C); what was measured is kept. */
  readonly signal?: AbortSignal;
  /**
   * Stop sending once the last 3 finished measurement windows are stable (perf_analyzer's
   * criterion; the newest window, still filling, is left out); requests in flight finish.
   */
  readonly untilStable?: { readonly windowS: number; readonly pct: number };
  /** Called every `progressMs` (default 1 s) with the figures so far. */
  readonly onProgress?: (p: Progress) => void;
  readonly progressMs?: number;
  /** Wall-clock epoch ms at which the run starts (several processes start together). */
  readonly startAtMs?: number;
  /** Only requests whose index ≡ shard.index (mod shard.of) are sent by this process. */
  readonly shard?: { readonly index: number; readonly of: number };
}

export interface RequestRecord {
  readonly index: number;
  readonly className: string;
  readonly steps: number;
  readonly images: number;
  /** Times relative to the run's start, ms. */
  readonly intendedMs: number;
  readonly sentMs: number;
  readonly acceptedMs: number | undefined;
  readonly firstProgressMs: number | undefined;
  readonly doneMs: number;
  /** Progress events received. */
  readonly progressEvents: number;
  /** Mean gap between consecutive progress events, ms. */
  readonly meanInterStepMs: number | undefined;
  readonly status: string;
  readonly message: string | undefined;
  readonly measured: boolean;
}

export interface Progress {
  readonly elapsedS: number;
  readonly sent: number;
  readonly inflight: number;
  readonly completed: number;
  readonly errors: number;
  readonly sentPerS: number;
  readonly p50Ms: number;
}

export interface RunResult {
  readonly startedAt: string;
  readonly durationMs: number;
  readonly records: RequestRecord[];
  readonly histograms: RunHistograms;
  readonly interrupted: boolean;
  /** Sending stopped early because the windows were stable (`untilStable`). */
  readonly stoppedStable: boolean;
  /** Length of the measured interval: from the end of warm-up to the start of cool-down, or to when sending stopped, s. */
  readonly measuredS: number;
}

/** Latency histograms of the measured requests (ok ones, except `clientQueue`). */
export interface RunHistograms {
  readonly total: Histogram;
  readonly accepted: Histogram;
  readonly firstProgress: Histogram;
  readonly interStep: Histogram;
  readonly clientQueue: Histogram;
}

export function emptyHistograms(): RunHistograms {
  return { total: createHistogram(), accepted: createHistogram(), firstProgress: createHistogram(), interStep: createHistogram(), clientQueue: createHistogram() };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

export async function runLoad(o: RunOptions): Promise<RunResult> {
  const wall0 = o.startAtMs ?? Date.now();
  await sleep(wall0 - Date.now());
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const startedAt = new Date(wall0).toISOString();
  const endMs = o.durationS * 1000;
  const warmMs = (o.warmupS ?? 0) * 1000;
  const coolFromMs = endMs - (o.cooldownS ?? 0) * 1000;
  const records: RequestRecord[] = [];
  const h = emptyHistograms();
  const stop = new AbortController();
  o.signal?.addEventListener("abort", () => stop.abort(), { once: true });
  const inflightAbort = new AbortController();
  setMaxListeners(0, inflightAbort.signal); // one listener per request in flight
  // Sending stops on Ctrl-C or once stable; only Ctrl-C cancels requests in flight.
  const halt = new AbortController();
  stop.signal.addEventListener("abort", () => halt.abort(), { once: true });
  let stoppedStable = false;
  const stableTimer = o.untilStable
    ? setInterval(() => {
        const w = o.untilStable!.windowS;
        const done = records.filter((r) => r.measured);
        const windows = measurementWindows(done, w).slice(0, -1);
        if (isStable(windows, o.untilStable!.pct)) {
          stoppedStable = true;
          halt.abort();
        }
      }, Math.max(100, (o.untilStable.windowS * 1000) / 2))
    : undefined;
  // Ctrl-C: no new requests; those in flight get 5 s, then are cancelled.
  stop.signal.addEventListener("abort", () => setTimeout(() => inflightAbort.abort(), 5000).unref(), { once: true });
  let inflight = 0;
  let sent = 0;
  let errors = 0;
  let sentLastTick = 0;
  const done: Promise<void>[] = [];
  // A client-side cap on concurrency (open loop): requests wait their turn; their latency still counts from the intended time.
  const waiters: (() => void)[] = [];
  const acquire = async () => {
    if (o.maxInflight === undefined || inflight < o.maxInflight) return;
    await new Promise<void>((r) => waiters.push(r));
  };

  async function issue(index: number, spec: RequestSpec, intendedMs: number): Promise<void> {
    await acquire();
    inflight++;
    sent++;
    const sentMs = now();
    let acceptedMs: number | undefined;
    let firstProgressMs: number | undefined;
    let lastProgress: number | undefined;
    let gaps = 0;
    let gapSum = 0;
    let progressEvents = 0;
    const measured = intendedMs >= warmMs && intendedMs < coolFromMs;
    let outcome: Outcome;
    try {
      outcome = await o.driver.send(
        spec,
        {
          accepted: () => void (acceptedMs ??= now()),
          progress: () => {
            const t = now();
            firstProgressMs ??= t;
            if (lastProgress !== undefined) {
              gaps++;
              gapSum += t - lastProgress;
              if (measured) recordMs(h.interStep, t - lastProgress);
            }
            lastProgress = t;
            progressEvents++;
          },
        },
        inflightAbort.signal,
      );
    } catch (e) {
      outcome = { status: "unknown", images: 0, message: (e as Error).message };
    }
    const doneMs = now();
    inflight--;
    waiters.shift()?.();
    if (outcome.status !== "ok") errors++;
    records.push({
      index, className: spec.className, steps: spec.steps, images: outcome.images, intendedMs, sentMs, acceptedMs, firstProgressMs, doneMs,
      progressEvents, meanInterStepMs: gaps > 0 ? gapSum / gaps : undefined, status: outcome.status, message: outcome.message, measured,
    });
    if (measured) {
      recordMs(h.clientQueue, sentMs - intendedMs);
      if (outcome.status === "ok") {
        recordMs(h.total, doneMs - intendedMs);
        if (acceptedMs !== undefined) recordMs(h.accepted, acceptedMs - intendedMs);
        if (firstProgressMs !== undefined) recordMs(h.firstProgress, firstProgressMs - intendedMs);
      }
    }
  }

  const progressTimer = o.onProgress
    ? setInterval(() => {
        const s = sent - sentLastTick;
        sentLastTick = sent;
        o.onProgress!({ elapsedS: now() / 1000, sent, inflight, completed: records.length, errors, sentPerS: s / ((o.progressMs ?? 1000) / 1000), p50Ms: percentiles(h.total).p50 });
      }, o.progressMs ?? 1000)
    : undefined;
  const mine = (i: number) => !o.shard || i % o.shard.of === o.shard.index;
  const max = o.maxRequests ?? Number.POSITIVE_INFINITY;
  let sendingEndedMs = endMs;
  try {
    if (o.mode.kind === "closed") {
      let index = 0;
      const loop = async () => {
        while (!halt.signal.aborted && now() < endMs && index < max) {
          const i = index++;
          await issue(i, o.next(), now());
        }
      };
      await Promise.all(Array.from({ length: o.mode.concurrency }, loop));
      sendingEndedMs = Math.min(endMs, now());
    } else {
      const plan = o.mode.kind === "open" ? o.mode.offsetsMs.map((offsetMs) => ({ offsetMs, spec: undefined as RequestSpec | undefined })) : o.mode.entries;
      for (let i = 0; i < plan.length && i < max; i++) {
        const at = plan[i]!.offsetMs;
        if (at >= endMs) break;
        // Every process draws the same requests in the same order; each sends its share.
        const spec = plan[i]!.spec ?? o.next();
        if (!mine(i)) continue;
        await sleep(at - now(), halt.signal);
        if (halt.signal.aborted) break;
        done.push(issue(i, spec, at));
      }
      sendingEndedMs = halt.signal.aborted ? Math.min(endMs, now()) : endMs;
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => (timer = setTimeout(r, stop.signal.aborted ? 5000 : (o.graceMs ?? 60_000))));
      await Promise.race([Promise.all(done), grace]);
      clearTimeout(timer);
      inflightAbort.abort();
      await Promise.all(done);
    }
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    if (stableTimer) clearInterval(stableTimer);
  }
  records.sort((a, b) => a.index - b.index);
  return { startedAt, durationMs: now(), records, histograms: h, interrupted: !!o.signal?.aborted, stoppedStable, measuredS: Math.max(0, Math.min(sendingEndedMs, coolFromMs) - warmMs) / 1000 };
}
