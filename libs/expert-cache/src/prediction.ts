import type { Trace } from "@switchyard/trace";
import type { ExpertId } from "./cache";

/**
 * The one prediction module: what a tick will need, from what is known before it runs —
 * the same requests' routing at their previous step (routing is very stable step to step
 * in flow models), and for requests with no history, class priors: the experts images of
 * that class used at their first step. The scheduler learns priors online from the first
 * evals it sees; the cache's replay and benches build them from a trace's first-step
 * records; both are the same `ClassPriors`.
 */

/** Adds routed experts ([rows*K] ids within a layer, per layer) to a prediction's counts. */
export function addRouting(into: Map<ExpertId, number>[], routing: readonly Int16Array[] | readonly ArrayLike<number>[], experts: number): void {
  routing.forEach((ids, l) => {
    const m = into[l]!;
    for (let i = 0; i < ids.length; i++) {
      const g = l * experts + ids[i]!;
      m.set(g, (m.get(g) ?? 0) + 1);
    }
  });
}

export function emptyPrediction(layers: number): Map<ExpertId, number>[] {
  return Array.from({ length: layers }, () => new Map());
}

/** Adds one image's predicted experts (global ids) to a per-layer prediction's counts. */
export function addExperts(into: Map<ExpertId, number>[], experts: Iterable<ExpertId> | undefined, expertsPerLayer: number): void {
  for (const g of experts ?? []) {
    const m = into[Math.floor(g / expertsPerLayer)]!;
    m.set(g, (m.get(g) ?? 0) + 1);
  }
}

/** Per label: how many first-step observations used each expert. */
export interface ClassPriors {
  /** One first-step observation of `label`: the experts (global ids) it used. */
  observe(label: number, used: Iterable<ExpertId>): void;
  /** Experts used by at least `minShare` of the label's observations; undefined before any. */
  prior(label: number): ReadonlySet<ExpertId> | undefined;
  /** Labels observed, ascending. */
  labels(): number[];
}

/** A quarter: the experts most first steps of a class share, without the long tail. */
export const DEFAULT_PRIOR_MIN_SHARE = 0.25;

/** Empty priors over `experts` global expert ids (layers × experts per layer). */
export function createClassPriors(experts: number, minShare = DEFAULT_PRIOR_MIN_SHARE): ClassPriors {
  const table = new Map<number, { n: number; used: Uint32Array; cached: Set<number> | undefined }>();
  return {
    observe(label, used) {
      let t = table.get(label);
      if (!t) table.set(label, (t = { n: 0, used: new Uint32Array(experts), cached: undefined }));
      t.n++;
      for (const g of new Set(used)) if (g >= 0 && g < experts) t.used[g]!++;
      t.cached = undefined;
    },
    prior(label) {
      const t = table.get(label);
      if (!t) return undefined;
      if (!t.cached) {
        t.cached = new Set();
        for (let g = 0; g < experts; g++) if (t.used[g]! / t.n >= minShare) t.cached.add(g);
      }
      return t.cached;
    },
    labels: () => [...table.keys()].sort((a, b) => a - b),
  };
}

/** Class priors from a routing trace's first-step records (both CFG branches: the unconditional one under `nullLabel`). */
export function classPriorsFromTrace(trace: Trace, options: { nullLabel: number; minShare?: number }): ClassPriors {
  const L = trace.layers;
  const E = trace.experts;
  const per = trace.tokens * trace.topK;
  const priors = createClassPriors(L * E, options.minShare);
  for (let i = 0; i < trace.records; i++) {
    if (trace.step[i] !== 0) continue;
    const used: number[] = [];
    for (let l = 0; l < L; l++) for (let j = 0; j < per; j++) used.push(l * E + trace.routing[(i * L + l) * per + j]!);
    priors.observe(trace.branch[i] === 0 ? trace.label[i]! : options.nullLabel, used);
  }
  return priors;
}
