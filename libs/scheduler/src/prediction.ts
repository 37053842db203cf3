/**
 * What the next tick will need, from what the scheduler saw: each request's experts at
 * its latest eval (routing is very stable step to step), and for requests with no
 * history yet, class priors learnt online from other requests' first evals.
 */

/** Global experts set in a bitmask ([ceil(n/8)] bytes, bit g of byte g>>3). */
export function unpackExperts(mask: Uint8Array, n: number): Set<number> {
  const out = new Set<number>();
  for (let g = 0; g < n; g++) if ((mask[g >> 3]! >> (g & 7)) & 1) out.add(g);
  return out;
}

/** Per label: how many first evals used each expert. */
export interface ClassPriors {
  observe(label: number, used: ReadonlySet<number>): void;
  /** Experts used by at least `minShare` of the label's first evals; undefined before any. */
  prior(label: number): ReadonlySet<number> | undefined;
}

/** A quarter: the experts most first steps of a class share, without the long tail. */
export const DEFAULT_PRIOR_MIN_SHARE = 0.25;

export function createClassPriors(experts: number, minShare = DEFAULT_PRIOR_MIN_SHARE): ClassPriors {
  const table = new Map<number, { n: number; used: Uint32Array; cached: Set<number> | undefined }>();
  return {
    observe(label, used) {
      let t = table.get(label);
      if (!t) table.set(label, (t = { n: 0, used: new Uint32Array(experts), cached: undefined }));
      t.n++;
      for (const g of used) if (g >= 0 && g < experts) t.used[g]!++;
      t.cached = undefined;
    },
    prior(label) {
      const t = table.get(label);
      if (!t) return undefined;
      if (!t.cached) {
        t.cached = new Set();
        for (let g = 0; g < experts; g++) if (t.used[g]! >= minShare * t.n) t.cached.add(g);
      }
      return t.cached;
    },
  };
}

/** Images predicted per global expert over a tick's items ([experts] counts). */
export function tickPrediction(sets: Iterable<ReadonlySet<number> | undefined>, experts: number): Int32Array | undefined {
  const out = new Int32Array(experts);
  let any = false;
  for (const s of sets) {
    if (!s) continue;
    for (const g of s) if (g >= 0 && g < experts) out[g]!++;
    any = true;
  }
  return any ? out : undefined;
}
