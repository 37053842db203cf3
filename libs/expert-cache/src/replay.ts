import type { Trace } from "@switchyard/trace";
import type { ExpertId } from "./cache";
import { addExperts, addRouting, classPriorsFromTrace, emptyPrediction } from "./prediction";
import { DEFAULT_RESIDENCY_LOOKAHEAD, type DeviceRun, type ExpertDevice, createResidency } from "./residency";

/**
 * Replays a routing trace through one worker's expert cache — the same residency code a
 * worker runs, on an in-memory device that computes nothing — to compare policies
 * without running the model. A tick is `batch` requests at the same sampler step (both
 * CFG passes); per layer, each expert's rows are the tick's assignments to it.
 *
 * Prediction (predictive policy): the same requests' routing at their previous step, and
 * for their first step the experts their class used at step 0 in a prior trace.
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
  /** Needed experts already resident (or prefetched) when their layer ran. */
  readonly hitRate: number;
  readonly bytesLoadedPerTick: number;
  /** Bytes loaded for experts the tick then did not use (prefetch waste). */
  readonly wastedBytesPerTick: number;
  /** On-demand loads per tick (each one stalls compute). */
  readonly stallsPerTick: number;
  readonly precision: number | undefined;
  readonly recall: number | undefined;
  /** Most bytes the device held at once. */
  readonly maxUsedBytes: number;
  readonly budgetBytes: number;
}

/** A device that keeps only residency (and its peak), in issue order. */
function countingDevice(expertBytes: number): ExpertDevice & { maxBytes(): number } {
  const resident = new Set<number>();
  let max = 0;
  const load = (id: number) => {
    resident.add(id);
    max = Math.max(max, resident.size * expertBytes);
  };
  return {
    stage: async () => ({ ms: 0, bytes: 0 }),
    load: async (ids) => {
      ids.forEach(load);
      return { ms: 0 };
    },
    evict: async (ids) => void ids.forEach((id) => resident.delete(id)),
    run: async (experts, _offsets, x): Promise<DeviceRun> => {
      const loaded = [...experts].filter((id) => !resident.has(id));
      loaded.forEach(load);
      return { y: new Float32Array(x.length), loadMs: 0, computeMs: 0, loaded };
    },
    residentIds: async () => [...resident],
    close: async () => undefined,
    maxBytes: () => max,
  };
}

export async function replayTrace(trace: Trace, o: ReplayOptions): Promise<ReplayResult> {
  const L = trace.layers;
  const E = trace.experts;
  const per = trace.tokens * trace.topK;
  const budgetBytes = Math.max(1, Math.floor(o.budgetFraction * L * E)) * o.expertBytes;
  const device = countingDevice(o.expertBytes);
  const residency = createResidency({
    device, layers: L, experts: E, sizeOf: () => o.expertBytes, budgetBytes, policy: o.policy, lookahead: o.lookahead ?? DEFAULT_RESIDENCY_LOOKAHEAD,
  });
  await residency.setHeld(Array.from({ length: L * E }, (_, i) => i));
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
  const nullLabel = -1;
  const priors = classPriorsFromTrace(o.priorTrace ?? trace, { nullLabel });
  const routingOf = (recs: readonly number[]) => Array.from({ length: L }, (_, l) => Int16Array.from(recs.flatMap((r) => Array.from(trace.routing.subarray((r * L + l) * per, (r * L + l + 1) * per)))));
  const predictive = o.policy === "predictive";
  let ticks = 0;
  for (let start = 0; start < requests; start += o.batch) {
    const reqs = Array.from({ length: Math.min(o.batch, requests - start) }, (_, i) => start + i);
    for (let s = 0; s <= maxStep; s++) {
      const recs = reqs.flatMap((r) => byReqStep.get(`${r}/${s}`) ?? []);
      if (recs.length === 0) continue;
      ticks++;
      let prediction: Map<ExpertId, number>[] | undefined;
      if (predictive) {
        prediction = emptyPrediction(L);
        for (const r of reqs) {
          const prev = byReqStep.get(`${r}/${s - 1}`);
          if (prev) addRouting(prediction, routingOf(prev), E);
          else {
            addExperts(prediction, priors.prior(labelOf.get(r) ?? nullLabel), E);
            addExperts(prediction, priors.prior(nullLabel), E);
          }
        }
      }
      residency.beginTick(prediction);
      for (let l = 0; l < L; l++) {
        const count = new Int32Array(E);
        for (const r of recs) for (let j = 0; j < per; j++) count[trace.routing[(r * L + l) * per + j]!]!++;
        const experts = Int32Array.from({ length: E }, (_, e) => e).filter((e) => count[e]! > 0);
        const offsets = new Int32Array(experts.length + 1);
        experts.forEach((e, i) => (offsets[i + 1] = offsets[i]! + count[e]!));
        await residency.runLayer(l, experts, offsets, new Float32Array(offsets[experts.length]!)); // D = 1: rows only
      }
      residency.endTick();
    }
  }
  const st = residency.stats();
  await residency.close();
  return {
    policy: o.policy,
    ticks,
    distinctPerLayer: st.layerRuns ? st.needed / st.layerRuns : 0,
    hitRate: st.needed ? st.hits / st.needed : 1,
    bytesLoadedPerTick: st.bytesLoaded / Math.max(1, ticks),
    wastedBytesPerTick: st.wastedBytes / Math.max(1, ticks),
    stallsPerTick: st.misses / Math.max(1, ticks),
    precision: predictive ? st.predictedHits / Math.max(1, st.predicted) : undefined,
    recall: predictive ? st.predictedHits / Math.max(1, st.needed) : undefined,
    maxUsedBytes: device.maxBytes(),
    budgetBytes,
  };
}
