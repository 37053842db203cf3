import type { Trace } from "@switchyard/placement";
import { type ExpertCache, type ExpertId, createExpertCache, createPolicy, predictivePolicy } from "./cache";

/**
 * Replays a routing trace through one worker's expert cache, tick by tick and layer by
 * layer, to compare policies without a GPU. A tick is `batch` requests at the same
 * sampler step (both CFG passes). Before layer l runs, the experts it needs must be
 * resident (misses load on demand: a stall); while it runs, the policy may prefetch
 * the experts it predicts for layers l+1..l+lookahead.
 *
 * Prediction (predictive policy): the same request's routing at its previous step
 * (routing is very stable step to step), and for a request's first step the
 * experts its class used at step 0 in a prior trace. Eviction keeps the experts
 * needed soonest (layers run in a cycle: the layer just finished is needed last).
 */
export interface ReplayOptions {
  readonly policy: string;
  /** Fraction of all experts that fit on the device (0 < f ≤ 1). */
  readonly budgetFraction: number;
  /** Requests per tick. */
  readonly batch: number;
  readonly expertBytes: number;
  /** Layers ahead that prefetch may target. */
  readonly lookahead?: number;
  /** Trace whose step-0 routing gives class priors (defaults to the replayed trace). */
  readonly priorTrace?: Trace;
}

export interface ReplayResult {
  readonly policy: string;
  readonly ticks: number;
  /** Mean distinct experts a tick needs per layer. */
  readonly distinctPerLayer: number;
  /** Needed experts already resident when their layer ran. */
  readonly hitRate: number;
  readonly bytesLoadedPerTick: number;
  /** Bytes loaded for experts the tick then did not use (prefetch waste). */
  readonly wastedBytesPerTick: number;
  /** On-demand loads per tick (each one stalls compute). */
  readonly stallsPerTick: number;
  readonly precision: number | undefined;
  readonly recall: number | undefined;
  readonly maxUsedBytes: number;
  readonly budgetBytes: number;
}

/** One layer ahead: measured on the reference traces, 2 layers ahead at a 50 % budget evicts experts needed sooner (more bytes, more stalls). */
export const DEFAULT_LOOKAHEAD = 1;

export function replayTrace(trace: Trace, o: ReplayOptions): ReplayResult {
  const L = trace.layers;
  const E = trace.experts;
  const per = trace.tokens * trace.topK;
  const budgetBytes = Math.max(1, Math.floor(o.budgetFraction * L * E)) * o.expertBytes;
  const predictive = o.policy === "predictive" ? predictivePolicy() : undefined;
  const cache: ExpertCache = createExpertCache({ budgetBytes, policy: predictive ?? createPolicy(o.policy), sizeOf: () => o.expertBytes });
  // records by (request, step)
  const byReqStep = new Map<string, number[]>();
  let maxStep = 0;
  let requests = 0;
  for (let i = 0; i < trace.records; i++) {
    const k = `${trace.request[i]}/${trace.step[i]}`;
    const a = byReqStep.get(k);
    if (a) a.push(i);
    else byReqStep.set(k, [i]);
    maxStep = Math.max(maxStep, trace.step[i]!);
    requests = Math.max(requests, trace.request[i]! + 1);
  }
  const labelOf = new Map<number, number>();
  for (let i = 0; i < trace.records; i++) if (trace.branch[i] === 0) labelOf.set(trace.request[i]!, trace.label[i]!);
  const expertsOf = (recs: readonly number[], l: number, into: Set<ExpertId>) => {
    for (const r of recs) {
      const base = (r * L + l) * per;
      for (let j = 0; j < per; j++) into.add(l * E + trace.routing[base + j]!);
    }
  };
  // class priors: experts each label used at step 0 (per layer), from the prior trace
  const prior = o.priorTrace ?? trace;
  const priors = new Map<number, Set<ExpertId>[]>();
  for (let i = 0; i < prior.records; i++) {
    if (prior.step[i] !== 0) continue;
    const lab = prior.branch[i] === 0 ? prior.label[i]! : -1;
    let p = priors.get(lab);
    if (!p) priors.set(lab, (p = Array.from({ length: L }, () => new Set<ExpertId>())));
    for (let l = 0; l < L; l++) {
      const base = (i * L + l) * prior.tokens * prior.topK;
      for (let j = 0; j < prior.tokens * prior.topK; j++) p[l]!.add(l * E + prior.routing[base + j]!);
    }
  }
  let now = 0;
  let ticks = 0;
  let hits = 0;
  let needed = 0;
  let loaded = 0;
  let stalls = 0;
  let wasted = 0;
  let tp = 0;
  let predictedCount = 0;
  let maxUsed = 0;
  const lookahead = o.lookahead ?? DEFAULT_LOOKAHEAD;
  for (let start = 0; start < requests; start += o.batch) {
    const reqs = Array.from({ length: Math.min(o.batch, requests - start) }, (_, i) => start + i);
    for (let s = 0; s <= maxStep; s++) {
      ticks++;
      const recs = reqs.flatMap((r) => byReqStep.get(`${r}/${s}`) ?? []);
      const need = Array.from({ length: L }, (_, l) => {
        const set = new Set<ExpertId>();
        expertsOf(recs, l, set);
        return set;
      });
      // prediction per layer
      const pred = Array.from({ length: L }, () => new Set<ExpertId>());
      for (const r of reqs) {
        const prev = byReqStep.get(`${r}/${s - 1}`);
        for (let l = 0; l < L; l++) {
          if (prev) expertsOf(prev, l, pred[l]!);
          else for (const lab of [labelOf.get(r) ?? -1, -1]) for (const id of priors.get(lab)?.[l] ?? []) pred[l]!.add(id);
        }
      }
      const usedThisTick = new Set<ExpertId>();
      const loadedThisTick = new Set<ExpertId>();
      for (let l = 0; l < L; l++) {
        now++;
        if (predictive) {
          // Belady-like: keep what is needed soonest. Layers run in a cycle, so the
          // experts of the layer just finished are needed furthest in the future.
          const scores = new Map<ExpertId, number>();
          for (let k = 0; k < L; k++) {
            const dist = (k - l + L) % L;
            for (const id of pred[k]!) scores.set(id, Math.max(scores.get(id) ?? 0, L - dist));
          }
          predictive.setPrediction(scores);
        }
        const want = [...need[l]!];
        for (const id of want) {
          needed++;
          if (cache.isResident(id)) hits++;
          else stalls++;
        }
        const prefetch: ExpertId[] = [];
        if (predictive) for (let k = l + 1; k < Math.min(L, l + lookahead + 1); k++) prefetch.push(...pred[k]!);
        const plan = cache.plan(want, prefetch, need[l]!);
        cache.apply(plan);
        for (const id of plan.load) loadedThisTick.add(id);
        loaded += plan.load.length;
        cache.access(want, now);
        for (const id of want) usedThisTick.add(id);
        maxUsed = Math.max(maxUsed, cache.usedBytes());
        predictedCount += pred[l]!.size;
        for (const id of pred[l]!) if (need[l]!.has(id)) tp++;
      }
      for (const id of loadedThisTick) if (!usedThisTick.has(id)) wasted++;
    }
  }
  return {
    policy: o.policy,
    ticks,
    distinctPerLayer: needed / (ticks * L),
    hitRate: needed ? hits / needed : 1,
    bytesLoadedPerTick: (loaded * o.expertBytes) / ticks,
    wastedBytesPerTick: (wasted * o.expertBytes) / ticks,
    stallsPerTick: stalls / ticks,
    precision: predictive ? tp / Math.max(1, predictedCount) : undefined,
    recall: predictive ? tp / Math.max(1, needed) : undefined,
    maxUsedBytes: maxUsed,
    budgetBytes,
  };
}
