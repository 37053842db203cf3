import { Code, SwitchyardError } from "@switchyard/errors";
import type { Trace } from "./trace";

/**
 * A placement: which worker owns each expert. `owner[layer * experts + e]` is a worker
 * index in 0..workers-1. `replicas[layer * experts + e]`, when present, lists the other
 * workers holding a redundant copy (DeepSeek EPLB-style) of a heavily loaded expert.
 *
 * Dispatch with copies: a home that holds a copy uses it; other homes spread the
 * expert's rows over its copies by token (row index modulo the number of copies).
 */
export interface Placement {
  readonly workers: number;
  readonly layers: number;
  readonly experts: number;
  readonly owner: Int32Array;
  readonly replicas?: readonly (readonly number[])[];
}

/** Workers holding global expert g: the owner first, then its replicas. */
export function copiesOf(p: Placement, g: number): readonly number[] {
  const r = p.replicas?.[g];
  return r && r.length ? [p.owner[g]!, ...r] : [p.owner[g]!];
}

/** The worker that serves an assignment of row `row` from `home` (see Placement). */
export function servingCopy(copies: readonly number[], home: number, row: number): number {
  if (copies.length === 1) return copies[0]!;
  return copies.includes(home) ? home : copies[row % copies.length]!;
}

/**
 * EPLB-style redundant copies (DeepSeek's expert-parallel load balancer) on top of any
 * placement: per layer, `slots` times, the heaviest expert (load per copy) on the most
 * loaded worker gets another copy on the least loaded worker that has room (at most
 * ceil(slots / W) extra experts per worker per layer) and no copy yet. Load per copy
 * assumes rows spread evenly over copies.
 */
export function addReplicas(trace: Trace, p: Placement, slots: number): Placement {
  if (!Number.isInteger(slots) || slots < 0) throw new SwitchyardError(`replicas ${slots} must be an integer >= 0`, Code.InvalidArgument, { field: "replicas" });
  const W = p.workers;
  const E = p.experts;
  const extra = Math.ceil(slots / W);
  const replicas: number[][] = Array.from({ length: p.layers * E }, (_, g) => [...(p.replicas?.[g] ?? [])]);
  if (slots === 0 || W === 1) return { ...p, replicas };
  expertLoad(trace).forEach((load, l) => {
    const held = new Int32Array(W);
    for (let e = 0; e < E; e++) for (const w of replicas[l * E + e]!) held[w]!++;
    const wl = (): Float64Array => {
      const out = new Float64Array(W);
      for (let e = 0; e < E; e++) {
        const copies = [p.owner[l * E + e]!, ...replicas[l * E + e]!];
        for (const w of copies) out[w]! += load[e]! / copies.length;
      }
      return out;
    };
    for (let s = 0; s < slots; s++) {
      const loads = wl();
      const order = Array.from({ length: W }, (_, w) => w).sort((a, b) => loads[b]! - loads[a]!);
      let done = false;
      for (const hot of order) {
        // the heaviest expert (per copy) that this worker serves and that can get another copy
        const cands = Array.from({ length: E }, (_, e) => e)
          .filter((e) => p.owner[l * E + e] === hot || replicas[l * E + e]!.includes(hot))
          .sort((a, b) => load[b]! / (1 + replicas[l * E + b]!.length) - load[a]! / (1 + replicas[l * E + a]!.length));
        for (const e of cands) {
          const copies = new Set([p.owner[l * E + e]!, ...replicas[l * E + e]!]);
          let best = -1;
          for (let w = 0; w < W; w++) if (!copies.has(w) && held[w]! < extra && (best < 0 || loads[w]! < loads[best]!)) best = w;
          // only where it lowers the hottest worker's load without making another hotter
          if (best < 0 || loads[best]! + load[e]! / (copies.size + 1) >= loads[hot]!) continue;
          replicas[l * E + e]!.push(best);
          held[best]!++;
          done = true;
          break;
        }
        if (done) break;
      }
      if (!done) break; // no copy lowers the peak any more (or every worker is full)
    }
  });
  return { ...p, replicas };
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
