import { Code, SwitchyardError } from "@switchyard/errors";
import type { Trace } from "./trace";

/**
 * A placement: which worker owns each expert. `owner[layer * experts + e]` is a worker
 * index in 0..workers-1 (one copy per expert; replicas come with the solver).
 */
export interface Placement {
  readonly workers: number;
  readonly layers: number;
  readonly experts: number;
  readonly owner: Int32Array;
}

function check(workers: number, layers: number, experts: number): void {
  if (!Number.isInteger(workers) || workers < 1) throw new SwitchyardError(`workers ${workers} must be an integer >= 1`, Code.InvalidArgument, { field: "workers" });
  if (experts % workers !== 0) {
    throw new SwitchyardError(`experts ${experts} must be a multiple of workers ${workers} (equal expert counts per worker)`, Code.InvalidArgument, { field: "workers" });
  }
  if (layers < 1) throw new SwitchyardError(`layers ${layers} must be >= 1`, Code.InvalidArgument, { field: "layers" });
}

/** DeepSpeed-MoE-like: worker w holds experts [w·E/W, (w+1)·E/W) of every layer. */
export function contiguousPlacement(workers: number, layers: number, experts: number): Placement {
  check(workers, layers, experts);
  const owner = new Int32Array(layers * experts);
  for (let l = 0; l < layers; l++) for (let e = 0; e < experts; e++) owner[l * experts + e] = Math.floor((e * workers) / experts);
  return { workers, layers, experts, owner };
}

/** Expert e of every layer on worker e mod W. */
export function roundRobinPlacement(workers: number, layers: number, experts: number): Placement {
  check(workers, layers, experts);
  const owner = new Int32Array(layers * experts);
  for (let l = 0; l < layers; l++) for (let e = 0; e < experts; e++) owner[l * experts + e] = e % workers;
  return { workers, layers, experts, owner };
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

/**
 * DeepSeek-EPLB-like load-only greedy (without replicas): per layer, experts in
 * descending load go to the least-loaded worker that still has a free slot. It ignores
 * which experts are used together.
 */
export function loadGreedyPlacement(trace: Trace, workers: number): Placement {
  check(workers, trace.layers, trace.experts);
  const E = trace.experts;
  const slots = E / workers;
  const owner = new Int32Array(trace.layers * E);
  expertLoad(trace).forEach((load, l) => {
    const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => load[b]! - load[a]! || a - b);
    const wl = new Float64Array(workers);
    const used = new Int32Array(workers);
    for (const e of order) {
      let best = -1;
      for (let w = 0; w < workers; w++) if (used[w]! < slots && (best < 0 || wl[w]! < wl[best]!)) best = w;
      owner[l * E + e] = best;
      wl[best]! += load[e]!;
      used[best]!++;
    }
  });
  return { workers, layers: trace.layers, experts: E, owner };
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
