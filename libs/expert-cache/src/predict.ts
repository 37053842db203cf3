import type { Trace } from "@switchyard/placement";
import type { ExpertId } from "./cache";

/**
 * What a tick will need, from what is known before it runs: the same requests' routing
 * at their previous step (routing is very stable step to step in flow models), and for
 * requests with no history, class priors (the experts images of that class used at
 * their first step).
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

/** Per label (the null label included): experts used at step 0 by at least `minShare` of that label's requests. */
export interface ClassPriors {
  add(into: Map<ExpertId, number>[], label: number): void;
  readonly labels: readonly number[];
}

/** Class priors from a routing trace's first-step records (both CFG branches). */
export function classPriorsFromTrace(trace: Trace, options: { nullLabel: number; minShare?: number }): ClassPriors {
  const L = trace.layers;
  const E = trace.experts;
  const per = trace.tokens * trace.topK;
  const minShare = options.minShare ?? 0.25;
  const counts = new Map<number, { n: number; used: Uint32Array }>();
  const mark = new Int32Array(L * E).fill(-1);
  for (let i = 0; i < trace.records; i++) {
    if (trace.step[i] !== 0) continue;
    const label = trace.branch[i] === 0 ? trace.label[i]! : options.nullLabel;
    let c = counts.get(label);
    if (!c) counts.set(label, (c = { n: 0, used: new Uint32Array(L * E) }));
    c.n++;
    for (let l = 0; l < L; l++)
      for (let j = 0; j < per; j++) {
        const g = l * E + trace.routing[(i * L + l) * per + j]!;
        if (mark[g] !== i) {
          mark[g] = i;
          c.used[g]!++;
        }
      }
  }
  const sets = new Map<number, ExpertId[][]>();
  for (const [label, c] of counts) {
    const s: ExpertId[][] = Array.from({ length: L }, () => []);
    for (let g = 0; g < L * E; g++) if (c.used[g]! / c.n >= minShare) s[Math.floor(g / E)]!.push(g);
    sets.set(label, s);
  }
  return {
    labels: [...sets.keys()].sort((a, b) => a - b),
    add(into, label) {
      sets.get(label)?.forEach((ids, l) => {
        for (const g of ids) into[l]!.set(g, (into[l]!.get(g) ?? 0) + 1);
      });
    },
  };
}
