import { Code, SwitchyardError } from "@switchyard/errors";
import type { IndexedPlan } from "@switchyard/contract";
import { type Trace, expertLoad } from "@switchyard/trace";

/**
 * A placement: the solvers' name for an expert plan over worker indices 0..workers-1
 * (`IndexedPlan`, with the one dispatch rule `copiesOf`/`servingCopy`, in @switchyard/contract).
 */
export type Placement = IndexedPlan;

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
        const copies = [p.owners[l * E + e]!, ...replicas[l * E + e]!];
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
          .filter((e) => p.owners[l * E + e] === hot || replicas[l * E + e]!.includes(hot))
          .sort((a, b) => load[b]! / (1 + replicas[l * E + b]!.length) - load[a]! / (1 + replicas[l * E + a]!.length));
        for (const e of cands) {
          const copies = new Set([p.owners[l * E + e]!, ...replicas[l * E + e]!]);
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
  return { version: 0, workers, layers, experts, owners: Array.from(owner) };
}

/** Expert e of every layer on worker e mod W. */
export function roundRobinPlacement(workers: number, layers: number, experts: number): Placement {
  check(workers, layers, experts);
  const owner = new Int32Array(layers * experts);
  for (let l = 0; l < layers; l++) for (let e = 0; e < experts; e++) owner[l * experts + e] = e % workers;
  return { version: 0, workers, layers, experts, owners: Array.from(owner) };
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
  return { version: 0, workers, layers: trace.layers, experts: E, owners: Array.from(owner) };
}

