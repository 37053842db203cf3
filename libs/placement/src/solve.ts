import { Code, SwitchyardError } from "@switchyard/errors";
import { chooseHomes } from "./cost";
import { type Placement, addReplicas, contiguousPlacement, loadGreedyPlacement, roundRobinPlacement } from "./placement";
import { expertLoad } from "@switchyard/trace";
import type { Trace } from "@switchyard/trace";

/**
 * Affinity placement (after ExFlow, adapted to dispatch-and-return). With the homes of
 * requests fixed, the rows that cross workers in layer l are
 *   Σ_e Σ_w x[e,w] · c[e,w],   c[e,w] = assignments of expert e from requests not homed on w,
 * a linear objective over binary x[e,w]. Each layer is then a small integer program:
 *   Σ_w x[e,w] = 1 (one copy), Σ_e x[e,w] = E/W (capacity),
 *   Σ_e load[e]·x[e,w] ≤ (1+β)·mean load (balance).
 * Solvers alternate: place for the current homes, re-home requests by affinity within
 * the homing bound, repeat while the cost drops. `exact` solves each layer with HiGHS
 * (MILP, time-limited); `heuristic` uses greedy + pairwise-swap local search and scales
 * to DeepSeek-V3-sized instances.
 */
export interface SolveOptions {
  readonly workers: number;
  /** Balance bound β: per-layer worker load ≤ (1+β)·mean. */
  readonly balance?: number;
  /** Alternation rounds (place ↔ home). */
  readonly rounds?: number;
  /** Per-layer HiGHS time limit, seconds (exact only). */
  readonly timeLimitS?: number;
  /** Homing balance slack (as in the cost model). */
  readonly homingSlack?: number;
  /** Redundant expert copies per layer added after solving (EPLB-style; 0: none). */
  readonly replicas?: number;
  readonly onProgress?: (msg: string) => void;
}

export interface SolveResult {
  readonly placement: Placement;
  readonly homes: Int32Array;
  /** Remote assignments (rows back) of the final placement and homes. */
  readonly cost: number;
  /** Lower bound from the last exact solves (sum of per-layer MILP bounds); heuristics report 0. */
  readonly bound: number;
  readonly seconds: number;
  readonly rounds: number;
}

/** The issue's imbalance target: no worker above 1.10 × the mean load of a layer. */
export const DEFAULT_BALANCE = 0.1;
export const DEFAULT_ROUNDS = 4;
export const DEFAULT_LAYER_TIME_LIMIT_S = 2;

/** c[l][e*W + w] for fixed homes. */
function costMatrix(trace: Trace, homes: Int32Array, W: number): Float64Array[] {
  const E = trace.experts;
  const c = Array.from({ length: trace.layers }, () => new Float64Array(E * W));
  const per = trace.tokens * trace.topK;
  const byExpert = Array.from({ length: trace.layers }, () => new Float64Array(E));
  const byExpertHome = Array.from({ length: trace.layers }, () => new Float64Array(E * W));
  for (let i = 0; i < trace.records; i++) {
    const h = homes[trace.request[i]!]!;
    for (let l = 0; l < trace.layers; l++) {
      const base = (i * trace.layers + l) * per;
      for (let j = 0; j < per; j++) {
        const e = trace.routing[base + j]!;
        byExpert[l]![e]! += 1;
        byExpertHome[l]![e * W + h]! += 1;
      }
    }
  }
  for (let l = 0; l < trace.layers; l++)
    for (let e = 0; e < E; e++) for (let w = 0; w < W; w++) c[l]![e * W + w] = byExpert[l]![e]! - byExpertHome[l]![e * W + w]!;
  return c;
}

function totalCost(c: Float64Array[], p: Placement): number {
  let s = 0;
  const W = p.workers;
  c.forEach((cl, l) => {
    for (let e = 0; e < p.experts; e++) s += cl[e * W + p.owners[l * p.experts + e]!]!;
  });
  return s;
}

function checkWorkers(trace: Trace, W: number): void {
  if (!Number.isInteger(W) || W < 1 || trace.experts % W !== 0) {
    throw new SwitchyardError(`workers ${W} must divide experts ${trace.experts}`, Code.InvalidArgument, { field: "workers" });
  }
}

/** Greedy + swap local search for one layer; returns owner[E]. */
function heuristicLayer(c: Float64Array, load: Float64Array, E: number, W: number, cap: number): Int32Array {
  const slots = E / W;
  const owner = new Int32Array(E).fill(-1);
  const used = new Int32Array(W);
  const wl = new Float64Array(W);
  // Most "opinionated" experts first: biggest gap between best and worst worker.
  const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => {
    const spread = (x: number) => {
      let lo = Infinity, hi = -Infinity;
      for (let w = 0; w < W; w++) {
        lo = Math.min(lo, c[x * W + w]!);
        hi = Math.max(hi, c[x * W + w]!);
      }
      return hi - lo;
    };
    return spread(b) - spread(a) || load[b]! - load[a]! || a - b;
  });
  for (const e of order) {
    let best = -1;
    for (let w = 0; w < W; w++) {
      if (used[w]! >= slots) continue;
      const fits = wl[w]! + load[e]! <= cap;
      if (best < 0) best = w;
      else {
        const bestFits = wl[best]! + load[e]! <= cap;
        if ((fits && !bestFits) || (fits === bestFits && (c[e * W + w]! < c[e * W + best]! || (c[e * W + w] === c[e * W + best] && wl[w]! < wl[best]!)))) best = w;
      }
    }
    owner[e] = best;
    used[best]!++;
    wl[best]! += load[e]!;
  }
  // Pairwise swaps that lower cost and keep (or restore) the balance bound.
  for (let pass = 0; pass < 20; pass++) {
    let improved = false;
    for (let a = 0; a < E; a++)
      for (let b = a + 1; b < E; b++) {
        const wa = owner[a]!, wb = owner[b]!;
        if (wa === wb) continue;
        const delta = c[a * W + wb]! + c[b * W + wa]! - c[a * W + wa]! - c[b * W + wb]!;
        const na = wl[wa]! - load[a]! + load[b]!;
        const nb = wl[wb]! - load[b]! + load[a]!;
        const okNow = na <= cap && nb <= cap;
        const wasOver = wl[wa]! > cap || wl[wb]! > cap;
        const balanceGain = Math.max(wl[wa]!, wl[wb]!) - Math.max(na, nb);
        if ((delta < -1e-9 && okNow) || (wasOver && balanceGain > 1e-9 && delta <= 0)) {
          owner[a] = wb;
          owner[b] = wa;
          wl[wa] = na;
          wl[wb] = nb;
          improved = true;
        }
      }
    if (!improved) break;
  }
  // Repair: while a worker is over the bound, make the cheapest swap that lowers the
  // heavier side's load (cost may rise: balance is a constraint, cost an objective).
  for (let guard = 0; guard < E * E; guard++) {
    let over = -1;
    for (let w = 0; w < W; w++) if (wl[w]! > cap + 1e-9 && (over < 0 || wl[w]! > wl[over]!)) over = w;
    if (over < 0) break;
    let bestA = -1, bestB = -1, bestDelta = Infinity;
    for (let a = 0; a < E; a++) {
      if (owner[a] !== over) continue;
      for (let b = 0; b < E; b++) {
        const wb = owner[b]!;
        if (wb === over || load[b]! >= load[a]!) continue;
        const nb = wl[wb]! - load[b]! + load[a]!;
        if (nb > Math.max(cap, wl[over]! - load[a]! + load[b]!)) continue;
        const delta = c[a * W + wb]! + c[b * W + over]! - c[a * W + over]! - c[b * W + wb]!;
        if (delta < bestDelta) {
          bestDelta = delta;
          bestA = a;
          bestB = b;
        }
      }
    }
    if (bestA < 0) break; // no improving swap: leave it (the exact solver reports infeasibility)
    const wb = owner[bestB]!;
    wl[over] = wl[over]! - load[bestA]! + load[bestB]!;
    wl[wb] = wl[wb]! - load[bestB]! + load[bestA]!;
    owner[bestA] = wb;
    owner[bestB] = over;
  }
  return owner;
}

type LayerSolver = (c: Float64Array, load: Float64Array, E: number, W: number, cap: number, warm: Int32Array) => { owner: Int32Array; bound: number };

async function highsLayerSolver(timeLimitS: number): Promise<LayerSolver> {
  const highs = await (await import("highs")).default();
  const OPTIMAL = highs.constants.modelStatus.optimal;
  const TIME_LIMIT = highs.constants.modelStatus.timeLimit;
  return (c, load, E, W, cap, warm) => {
    const slots = E / W;
    const v = (e: number, w: number) => `x${e}_${w}`;
    const lines: string[] = ["Minimize", " obj: " + Array.from({ length: E * W }, (_, i) => `${c[i]!} ${v(Math.floor(i / W), i % W)}`).join(" + "), "Subject To"];
    for (let e = 0; e < E; e++) lines.push(` one${e}: ` + Array.from({ length: W }, (_, w) => v(e, w)).join(" + ") + " = 1");
    for (let w = 0; w < W; w++) {
      lines.push(` cap${w}: ` + Array.from({ length: E }, (_, e) => v(e, w)).join(" + ") + ` = ${slots}`);
      lines.push(` bal${w}: ` + Array.from({ length: E }, (_, e) => `${load[e]!} ${v(e, w)}`).join(" + ") + ` <= ${cap}`);
    }
    lines.push("Binary", " " + Array.from({ length: E * W }, (_, i) => v(Math.floor(i / W), i % W)).join(" "), "End");
    return highs.withModel({ format: "lp", data: lines.join("\n") }, (model) => {
      model.options.set({ output_flag: false, time_limit: timeLimitS });
      const col = Array.from({ length: E * W }, (_, i) => model.getColByName(v(Math.floor(i / W), i % W)));
      // Warm start: the heuristic's answer as the first incumbent.
      const start = new Float64Array(E * W);
      warm.forEach((w, e) => (start[col[e * W + w]!] = 1));
      model.setSolution({ colValue: start });
      const status = model.run().modelStatus;
      if (status !== OPTIMAL && status !== TIME_LIMIT) return { owner: warm, bound: 0 };
      const x = model.getSolution().colValue;
      const owner = new Int32Array(E).fill(-1);
      for (let e = 0; e < E; e++) for (let w = 0; w < W; w++) if (x[col[e * W + w]!]! > 0.5) owner[e] = w;
      if (owner.some((o) => o < 0)) return { owner: warm, bound: 0 };
      const bound = Number(model.info.get("mip_dual_bound"));
      return { owner, bound: Number.isFinite(bound) ? bound : 0 };
    });
  };
}

async function alternate(trace: Trace, o: SolveOptions, solver: LayerSolver | undefined): Promise<SolveResult> {
  const t0 = performance.now();
  const W = o.workers;
  checkWorkers(trace, W);
  const E = trace.experts;
  const beta = o.balance ?? DEFAULT_BALANCE;
  const loads = expertLoad(trace);
  let placement = contiguousPlacement(W, trace.layers, E);
  let homes = chooseHomes(trace, placement, "affinity", o.homingSlack);
  let best = { placement, homes, cost: totalCost(costMatrix(trace, homes, W), placement), bound: 0 };
  let rounds = 0;
  for (let round = 0; round < (o.rounds ?? DEFAULT_ROUNDS); round++) {
    rounds++;
    const c = costMatrix(trace, homes, W);
    const owner = new Int32Array(trace.layers * E);
    let bound = 0;
    for (let l = 0; l < trace.layers; l++) {
      const load = loads[l]!;
      const cap = ((1 + beta) * load.reduce((a, b) => a + b, 0)) / W;
      const warm = heuristicLayer(c[l]!, load, E, W, cap);
      const r = solver ? solver(c[l]!, load, E, W, cap, warm) : { owner: warm, bound: 0 };
      owner.set(r.owner, l * E);
      bound += r.bound;
    }
    placement = { version: 0, workers: W, layers: trace.layers, experts: E, owners: Array.from(owner) };
    homes = chooseHomes(trace, placement, "affinity", o.homingSlack);
    const cost = totalCost(costMatrix(trace, homes, W), placement);
    o.onProgress?.(`round ${round + 1}: ${cost} remote assignments${solver ? ` (layer bounds sum ${bound.toFixed(0)} for the previous homes)` : ""}`);
    if (cost < best.cost - 1e-9) best = { placement, homes, cost, bound };
    else break;
  }
  return { ...best, seconds: (performance.now() - t0) / 1000, rounds };
}

/** Greedy + local search; no solver dependency, for any size. */
export function solveHeuristic(trace: Trace, o: SolveOptions): Promise<SolveResult> {
  return alternate(trace, o, undefined);
}

/** HiGHS MILP per layer, time-limited and warm-started from the heuristic's answer. */
export async function solveExact(trace: Trace, o: SolveOptions): Promise<SolveResult> {
  return alternate(trace, o, await highsLayerSolver(o.timeLimitS ?? DEFAULT_LAYER_TIME_LIMIT_S));
}

/** Every placement solver behind one interface; unknown names throw INVALID_ARGUMENT. */
export const SOLVERS = ["exact", "heuristic", "contiguous", "round-robin", "load-greedy", "eplb"] as const;
export type SolverName = (typeof SOLVERS)[number];

export async function solvePlacement(name: string, trace: Trace, o: SolveOptions): Promise<{ placement: Placement; seconds: number }> {
  const t0 = performance.now();
  // Any solver's plan can get redundant copies of its hottest experts (o.replicas per layer).
  const done = (placement: Placement) => ({ placement: o.replicas ? addReplicas(trace, placement, o.replicas) : placement, seconds: (performance.now() - t0) / 1000 });
  switch (name as SolverName) {
    case "exact":
      return done((await solveExact(trace, o)).placement);
    case "heuristic":
      return done((await solveHeuristic(trace, o)).placement);
    case "contiguous":
      return done(contiguousPlacement(o.workers, trace.layers, trace.experts));
    case "round-robin":
      return done(roundRobinPlacement(o.workers, trace.layers, trace.experts));
    case "load-greedy":
      return done(loadGreedyPlacement(trace, o.workers));
    case "eplb": // DeepSeek's EPLB: load-only packing plus redundant copies (default one per worker per layer)
      return done(addReplicas(trace, loadGreedyPlacement(trace, o.workers), o.replicas ? 0 : o.workers));
    default:
      throw new SwitchyardError(`solver ${JSON.stringify(name)} must be one of ${SOLVERS.join(", ")}`, Code.InvalidArgument, { field: "solver" });
  }
}
