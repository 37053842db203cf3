import { Code, SwitchyardError } from "@switchyard/errors";
import { copiesOf, servingCopy } from "@switchyard/contract";
import type { Placement } from "./placement";
import type { Trace } from "@switchyard/trace";

/**
 * What a placement costs on a trace, per generated image (a trace request), for both
 * dispatch schemes of DESIGN.md §4:
 *
 *  dispatch-and-return (Switchyard): an image's dense compute stays on its home; per
 *    layer a token's row goes once to every other worker owning one of its top-k
 *    experts, and each of those experts' outputs comes back: D floats out per
 *    (token, remote owner), D floats back per remote assignment.
 *  token-stays (ExFlow): a token lives on the worker of its top-1 expert; attention
 *    needs the full context, so each layer all-gathers keys and values (2·D floats to
 *    each of the W-1 other workers per token), a token moves when its next top-1 expert
 *    lives elsewhere (D floats), and its other top-k experts are dispatched and
 *    returned as above.
 *
 * Load: assignments computed per worker per layer; imbalance = max ÷ mean.
 */
export type HomingPolicy = "affinity" | "round-robin";

export interface CostOptions {
  /** Hidden size D (floats per row). */
  readonly hidden: number;
  readonly homing?: HomingPolicy;
  /** Affinity homing keeps each worker within (1 + slack) × the mean number of requests. */
  readonly homingSlack?: number;
  readonly bytesPerFloat?: number;
}

export interface PlacementCost {
  readonly images: number;
  /** Rows sent to remote experts per image (dispatch-and-return). */
  readonly rowsOutPerImage: number;
  /** Remote expert outputs returned per image. */
  readonly rowsBackPerImage: number;
  readonly bytesPerImage: number;
  /** Token-stays (ExFlow) bytes per image, with its attention all-gather. */
  readonly tokenStaysBytesPerImage: number;
  /** Fraction of (token, layer, expert) assignments served by a worker other than the home. */
  readonly remoteFraction: number;
  /** Worst layer's max ÷ mean worker load. */
  readonly imbalance: number;
  /** Mean over layers of max ÷ mean worker load. */
  readonly meanImbalance: number;
  /** Home worker per trace request. */
  readonly homes: Int32Array;
}

/** 10 % over the mean: homes follow affinity but no worker gets far more images. */
export const DEFAULT_HOMING_SLACK = 0.1;

function requestsOf(trace: Trace): number {
  let n = 0;
  for (let i = 0; i < trace.records; i++) n = Math.max(n, trace.request[i]! + 1);
  return n;
}

/**
 * Homes per request: "affinity" sends each request to the worker owning most of its
 * assignments, within a balance bound (largest requests placed first); "round-robin"
 * ignores the placement.
 */
export function chooseHomes(trace: Trace, p: Placement, policy: HomingPolicy = "affinity", slack = DEFAULT_HOMING_SLACK): Int32Array {
  const R = requestsOf(trace);
  const W = p.workers;
  const homes = new Int32Array(R);
  if (policy === "round-robin") {
    for (let r = 0; r < R; r++) homes[r] = r % W;
    return homes;
  }
  const score = Array.from({ length: R }, () => new Float64Array(W));
  const per = trace.tokens * trace.topK;
  for (let i = 0; i < trace.records; i++) {
    const s = score[trace.request[i]!]!;
    for (let l = 0; l < trace.layers; l++) {
      const base = (i * trace.layers + l) * per;
      for (let j = 0; j < per; j++) for (const w of copiesOf(p, l * p.experts + trace.routing[base + j]!)) s[w]! += 1;
    }
  }
  const cap = Math.ceil((R / W) * (1 + slack));
  const used = new Int32Array(W);
  const order = Array.from({ length: R }, (_, r) => r).sort((a, b) => Math.max(...score[b]!) - Math.max(...score[a]!) || a - b);
  for (const r of order) {
    let best = -1;
    for (let w = 0; w < W; w++) if (used[w]! < cap && (best < 0 || score[r]![w]! > score[r]![best]!)) best = w;
    homes[r] = best;
    used[best]!++;
  }
  return homes;
}

export function placementCost(trace: Trace, p: Placement, o: CostOptions): PlacementCost {
  if (p.layers !== trace.layers || p.experts !== trace.experts) {
    throw new SwitchyardError(`placement is for ${p.layers}×${p.experts} experts, the trace has ${trace.layers}×${trace.experts}`, Code.InvalidArgument);
  }
  const W = p.workers;
  const E = p.experts;
  const K = trace.topK;
  const D = o.hidden;
  const bpf = o.bytesPerFloat ?? 4;
  const homes = chooseHomes(trace, p, o.homing ?? "affinity", o.homingSlack ?? DEFAULT_HOMING_SLACK);
  const load = Array.from({ length: trace.layers }, () => new Float64Array(W));
  let rowsOut = 0;
  let rowsBack = 0;
  let remote = 0;
  let total = 0;
  let stayFloats = 0;
  const seen = new Int32Array(W);
  let stamp = 0;
  for (let i = 0; i < trace.records; i++) {
    const h = homes[trace.request[i]!]!;
    for (let tok = 0; tok < trace.tokens; tok++) {
      let prevLoc = -1;
      for (let l = 0; l < trace.layers; l++) {
        const base = ((i * trace.layers + l) * trace.tokens + tok) * K;
        stamp++;
        const loc = p.owners[l * E + trace.routing[base]!]!; // token-stays: lives with its top-1 expert
        stayFloats += 2 * D * (W - 1);
        if (prevLoc >= 0 && prevLoc !== loc) stayFloats += D;
        prevLoc = loc;
        for (let k = 0; k < K; k++) {
          const w = servingCopy(copiesOf(p, l * E + trace.routing[base + k]!), h, i * trace.tokens + tok);
          load[l]![w]! += 1;
          total++;
          if (k > 0 && w !== loc) stayFloats += 2 * D;
          if (w === h) continue;
          remote++;
          rowsBack++;
          if (seen[w] !== stamp) {
            seen[w] = stamp;
            rowsOut++;
          }
        }
      }
    }
  }
  const images = requestsOf(trace);
  let worst = 0;
  let meanImb = 0;
  for (const lw of load) {
    const mean = lw.reduce((a, b) => a + b, 0) / W;
    const imb = mean > 0 ? Math.max(...lw) / mean : 1;
    worst = Math.max(worst, imb);
    meanImb += imb / load.length;
  }
  return {
    images,
    rowsOutPerImage: rowsOut / images,
    rowsBackPerImage: rowsBack / images,
    bytesPerImage: ((rowsOut + rowsBack) * D * bpf) / images,
    tokenStaysBytesPerImage: (stayFloats * bpf) / images,
    remoteFraction: total ? remote / total : 0,
    imbalance: worst,
    meanImbalance: meanImb,
    homes,
  };
}

export interface BoundOptions {
  readonly hidden: number;
  /** Experts per worker per layer (no replicas): E/W by default, as the solvers enforce. */
  readonly capacity?: number;
  /**
   * "request": an image keeps one home for its whole run (as `placementCost` assumes);
   * "step": homes may change every step (as the runtime's affinity re-homing may).
   */
  readonly homesPer?: "request" | "step";
  readonly bytesPerFloat?: number;
}

export interface CostBound {
  readonly rowsBackPerImage: number;
  readonly rowsOutPerImage: number;
  readonly bytesPerImage: number;
}

/**
 * A lower bound on dispatch-and-return bytes per image that holds for every placement
 * with at most `capacity` experts of a layer per worker and every homing, balance
 * ignored (a relaxation). Per image (or image step) and layer, its home holds at most
 * `capacity` experts, so at least the assignments outside the `capacity` experts it
 * uses most are remote (rows back); a token with r remote assignments needs at least
 * one row out, and r ≤ K, so rows out ≥ rows back ÷ K.
 */
export function crossWorkerLowerBound(trace: Trace, workers: number, o: BoundOptions): CostBound {
  const E = trace.experts;
  const L = trace.layers;
  const K = trace.topK;
  const per = trace.tokens * K;
  const cap = o.capacity ?? Math.ceil(E / workers);
  if (!(Number.isInteger(workers) && workers >= 1)) throw new SwitchyardError(`workers ${workers} must be an integer >= 1`, Code.InvalidArgument, { field: "workers" });
  if (!(Number.isInteger(cap) && cap >= 1)) throw new SwitchyardError(`capacity ${cap} must be an integer >= 1`, Code.InvalidArgument, { field: "capacity" });
  // counts per group (request, or request/step) and layer
  const groups = new Map<string, Float64Array>();
  for (let i = 0; i < trace.records; i++) {
    const key = o.homesPer === "step" ? `${trace.request[i]}/${trace.step[i]}` : String(trace.request[i]);
    let c = groups.get(key);
    if (!c) groups.set(key, (c = new Float64Array(L * E)));
    for (let l = 0; l < L; l++) {
      const base = (i * L + l) * per;
      for (let j = 0; j < per; j++) c[l * E + trace.routing[base + j]!]! += 1;
    }
  }
  let back = 0;
  for (const c of groups.values())
    for (let l = 0; l < L; l++) {
      const row = Array.from(c.subarray(l * E, (l + 1) * E)).sort((a, b) => b - a);
      let all = 0;
      let kept = 0;
      row.forEach((v, idx) => {
        all += v;
        if (idx < cap) kept += v;
      });
      back += all - kept;
    }
  const images = requestsOf(trace);
  const out = back / K;
  return { rowsBackPerImage: back / images, rowsOutPerImage: out / images, bytesPerImage: ((back + out) * o.hidden * (o.bytesPerFloat ?? 4)) / images };
}
