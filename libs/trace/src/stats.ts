import type { Trace } from "./format";

export interface TraceStats {
  readonly records: number;
  readonly requests: number;
  readonly layers: number;
  readonly experts: number;
  readonly topK: number;
  readonly tokens: number;
  /** Mean distinct experts one record (image pass) touches per layer. */
  readonly distinctExpertsPerRecordLayer: number;
  /** Per layer: max ÷ mean expert load. */
  readonly expertLoadImbalance: number[];
  /** Tokens whose top-1 expert is the same at the next sampler step (same request, branch, layer). */
  readonly top1KeptNextStep: number | undefined;
}

export function traceStats(t: Trace): TraceStats {
  const per = t.tokens * t.topK;
  const mark = new Int32Array(t.experts);
  let stamp = 0;
  let distinct = 0;
  for (let r = 0; r < t.records; r++)
    for (let l = 0; l < t.layers; l++) {
      stamp++;
      const base = (r * t.layers + l) * per;
      for (let i = 0; i < per; i++) {
        const e = t.routing[base + i]!;
        if (mark[e] !== stamp) {
          mark[e] = stamp;
          distinct++;
        }
      }
    }
  const imbalance = expertLoad(t).map((load) => {
    const mean = load.reduce((a, b) => a + b, 0) / load.length;
    return mean > 0 ? Math.max(...load) / mean : 1;
  });
  // index records by (request, branch, step)
  const key = (r: number, b: number, s: number) => `${r}/${b}/${s}`;
  const at = new Map<string, number>();
  for (let i = 0; i < t.records; i++) at.set(key(t.request[i]!, t.branch[i]!, t.step[i]!), i);
  let kept = 0;
  let pairs = 0;
  for (let i = 0; i < t.records; i++) {
    const j = at.get(key(t.request[i]!, t.branch[i]!, t.step[i]! + 1));
    if (j === undefined) continue;
    for (let l = 0; l < t.layers; l++)
      for (let tok = 0; tok < t.tokens; tok++) {
        const a = t.routing[((i * t.layers + l) * t.tokens + tok) * t.topK]!;
        const b = t.routing[((j * t.layers + l) * t.tokens + tok) * t.topK]!;
        pairs++;
        if (a === b) kept++;
      }
  }
  let requests = 0;
  for (let i = 0; i < t.records; i++) requests = Math.max(requests, t.request[i]! + 1);
  return {
    records: t.records, requests, layers: t.layers, experts: t.experts, topK: t.topK, tokens: t.tokens,
    distinctExpertsPerRecordLayer: t.records ? distinct / (t.records * t.layers) : 0,
    expertLoadImbalance: imbalance,
    top1KeptNextStep: pairs ? kept / pairs : undefined,
  };
}

/** How a group of records (one request, one class, one timestep band) uses the experts. */
export interface GroupActivation {
  readonly key: string;
  readonly records: number;
  /** Distinct experts the group's records use together, mean over layers. */
  readonly distinctPerLayer: number;
  /** Share of the group's assignments that go to its most used quarter of experts (per layer, averaged). */
  readonly topQuarterShare: number;
}

export interface CoActivation {
  readonly by: "request" | "class" | "band";
  readonly groups: readonly GroupActivation[];
  /**
   * Mean over pairs of groups and layers of the histogram intersection Σ_e min(p_e, q_e)
   * of their expert-usage distributions: 1 = the groups use experts identically, 0 =
   * disjointly. Low overlap is what placement and route-aware batching can exploit.
   */
  readonly meanOverlap: number;
}

/** Timestep band of t ∈ [0, 1] among `bands` equal bands. */
function bandOf(t: number, bands: number): number {
  return Math.min(bands - 1, Math.max(0, Math.floor(t * bands)));
}

/**
 * Co-activation by request, by class (the unconditional CFG branch is its own class)
 * or by timestep band. At most `maxPairs` group pairs are compared (the first groups).
 */
export function coActivation(t: Trace, by: CoActivation["by"], options: { bands?: number; maxGroups?: number } = {}): CoActivation {
  const bands = options.bands ?? 4;
  const L = t.layers;
  const E = t.experts;
  const per = t.tokens * t.topK;
  const keyOf = (i: number) => (by === "request" ? `request ${t.request[i]}` : by === "class" ? (t.branch[i] === 1 || t.label[i]! < 0 ? "unconditional" : `class ${t.label[i]}`) : `t ${(bandOf(t.t[i]!, bands) / bands).toFixed(2)}–${((bandOf(t.t[i]!, bands) + 1) / bands).toFixed(2)}`);
  const counts = new Map<string, { records: number; c: Float64Array }>();
  for (let i = 0; i < t.records; i++) {
    const k = keyOf(i);
    let g = counts.get(k);
    if (!g) counts.set(k, (g = { records: 0, c: new Float64Array(L * E) }));
    g.records++;
    for (let l = 0; l < L; l++) {
      const base = (i * L + l) * per;
      for (let j = 0; j < per; j++) g.c[l * E + t.routing[base + j]!]! += 1;
    }
  }
  const keys = [...counts.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).slice(0, options.maxGroups ?? 200);
  const dist = new Map<string, Float64Array>();
  const groups: GroupActivation[] = keys.map((key) => {
    const { records, c } = counts.get(key)!;
    const p = new Float64Array(L * E);
    let distinct = 0;
    let top = 0;
    for (let l = 0; l < L; l++) {
      const row = c.subarray(l * E, (l + 1) * E);
      const total = row.reduce((a, b) => a + b, 0);
      for (let e = 0; e < E; e++) {
        if (row[e]! > 0) distinct++;
        p[l * E + e] = total > 0 ? row[e]! / total : 0;
      }
      const sorted = [...row].sort((a, b) => b - a);
      top += total > 0 ? sorted.slice(0, Math.max(1, Math.round(E / 4))).reduce((a, b) => a + b, 0) / total : 0;
    }
    dist.set(key, p);
    return { key, records, distinctPerLayer: distinct / L, topQuarterShare: top / L };
  });
  let overlap = 0;
  let pairs = 0;
  for (let a = 0; a < keys.length; a++)
    for (let b = a + 1; b < keys.length; b++) {
      const p = dist.get(keys[a]!)!;
      const q = dist.get(keys[b]!)!;
      let s = 0;
      for (let i = 0; i < p.length; i++) s += Math.min(p[i]!, q[i]!);
      overlap += s / L;
      pairs++;
    }
  return { by, groups, meanOverlap: pairs ? overlap / pairs : 1 };
}

/** [E*E] records in which experts i and j are both used at `layer` (optionally only records passing `filter`). */
export function coActivationMatrix(t: Trace, layer: number, filter?: (record: number) => boolean): Float64Array {
  const E = t.experts;
  const per = t.tokens * t.topK;
  const m = new Float64Array(E * E);
  const used = new Uint8Array(E);
  for (let i = 0; i < t.records; i++) {
    if (filter && !filter(i)) continue;
    used.fill(0);
    const base = (i * t.layers + layer) * per;
    for (let j = 0; j < per; j++) used[t.routing[base + j]!] = 1;
    for (let a = 0; a < E; a++) if (used[a]) for (let b = 0; b < E; b++) if (used[b]) m[a * E + b]! += 1;
  }
  return m;
}

/** Assignments per (layer, expert) over a trace: [layers][experts]. */
export function expertLoad(trace: Trace): Float64Array[] {
  const load = Array.from({ length: trace.layers }, () => new Float64Array(trace.experts));
  const per = trace.tokens * trace.topK;
  for (let r = 0; r < trace.records; r++)
    for (let l = 0; l < trace.layers; l++) {
      const base = (r * trace.layers + l) * per;
      for (let i = 0; i < per; i++) load[l]![trace.routing[base + i]!]! += 1;
    }
  return load;
}

/** Inter-layer affinity (ExFlow): counts of top-1 expert i at layer l → top-1 expert j at l+1, [L-1][E*E]. */
export function transitions(trace: Trace): Float64Array[] {
  const E = trace.experts;
  const out = Array.from({ length: Math.max(0, trace.layers - 1) }, () => new Float64Array(E * E));
  const K = trace.topK;
  for (let r = 0; r < trace.records; r++)
    for (let tok = 0; tok < trace.tokens; tok++)
      for (let l = 0; l + 1 < trace.layers; l++) {
        const a = trace.routing[((r * trace.layers + l) * trace.tokens + tok) * K]!;
        const b = trace.routing[((r * trace.layers + l + 1) * trace.tokens + tok) * K]!;
        out[l]![a * E + b]! += 1;
      }
  return out;
}

/** How a CFG pair's two rows route: per token and layer, over every (request, step) with both branches. */
export interface CfgPairOverlap {
  /** (request, step) pairs with a conditional and an unconditional record. */
  readonly pairs: number;
  /** Token-layer slots compared (pairs × layers × tokens). */
  readonly slots: number;
  /** Fraction of slots whose two rows pick the same top-k set. */
  readonly sameSet: number;
  /** Fraction whose first choice is the same expert. */
  readonly sameFirst: number;
  /** Mean fraction of the top-k experts the two rows share. */
  readonly sharedFraction: number;
  /** sameSet per layer. */
  readonly sameSetByLayer: number[];
}

/**
 * How often a token's conditional and unconditional rows pick the same experts (#18:
 * would routing a CFG pair once pay?). Records pair up by (request, step, and the
 * evaluation's t, so a two-stage sampler's evaluations are told apart).
 */
export function cfgPairOverlap(t: Trace): CfgPairOverlap {
  const { layers, tokens, topK } = t;
  const stride = layers * tokens * topK;
  const byKey = new Map<string, [number | undefined, number | undefined]>();
  for (let r = 0; r < t.records; r++) {
    const key = `${t.request[r]}/${t.step[r]}/${t.t[r]}`;
    const e = byKey.get(key) ?? [undefined, undefined];
    e[t.branch[r] === 0 ? 0 : 1] = r;
    byKey.set(key, e);
  }
  let pairs = 0;
  let same = 0;
  let first = 0;
  let shared = 0;
  const byLayer = new Float64Array(layers);
  for (const [c, u] of byKey.values()) {
    if (c === undefined || u === undefined) continue;
    pairs++;
    for (let l = 0; l < layers; l++) {
      for (let k = 0; k < tokens; k++) {
        const a = c * stride + (l * tokens + k) * topK;
        const b = u * stride + (l * tokens + k) * topK;
        let common = 0;
        for (let i = 0; i < topK; i++) for (let j = 0; j < topK; j++) if (t.routing[a + i] === t.routing[b + j]) common++;
        if (common === topK) {
          same++;
          byLayer[l]!++;
        }
        if (t.routing[a] === t.routing[b]) first++;
        shared += common / topK;
      }
    }
  }
  const slots = pairs * layers * tokens;
  const per = (x: number, n: number) => (n ? x / n : NaN);
  return { pairs, slots, sameSet: per(same, slots), sameFirst: per(first, slots), sharedFraction: per(shared, slots), sameSetByLayer: Array.from(byLayer, (x) => per(x, pairs * tokens)) };
}
