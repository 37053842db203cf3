import { createExpertsUsed, markExpertUsed } from "@switchyard/contract";
import { type ReuseRequest, createEngine, partsExpertRunner } from "@switchyard/engine";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { ModelParts } from "@switchyard/model";
import type { CacheStats, Residency } from "@switchyard/expert-cache";
import { type GateOptions, createComputeGate, gatedParts } from "./compute-gate";
import type { WarmUpOptions } from "./warm-up-parts";
import { ExpertOwner } from "./expert-owner";
import { DEFAULT_REUSE_KEEP_BYTES, KeptReuseStates } from "./kept-reuse-states";
import { HeldExperts } from "./held-experts";
import { type HomeContext, homeExecutor, sendEmpty } from "./home-executor";
import { type ExchangeRequestMsg, type ExchangeResponseMsg, type PeerClient, type ReuseResultMsg, type TickRequestMsg, type TickResponseMsg, type WorkerTraffic, reuseKey } from "@switchyard/proto";

/**
 * A worker (one GPU): home to some images of a tick (runs their dense parts) and owner
 * of some experts (runs them over the rows of every home).
 *
 * Per MoE layer of a tick, every home sends every other worker exactly one Exchange
 * (possibly empty): the unique rows routed to that worker's experts and the
 * (row, expert) assignments. An owner waits until every home of the tick has
 * contributed (its own rows included), runs each of its experts once over all rows of
 * all homes, and answers each home with the expert output of every assignment. Homes
 * weight and sum them in ascending expert order, exactly as the in-process engine
 * does, so results do not depend on where experts live. Per row this sends D floats
 * to each owner touched and D floats back per expert of the row on that owner.
 */
export interface WorkerRuntime {
  readonly id: string;
  runTick(req: TickRequestMsg): Promise<TickResponseMsg>;
  exchange(req: ExchangeRequestMsg): Promise<ExchangeResponseMsg>;
  /** Holds exactly these global experts: loads the new ones, then drops the rest. */
  setExperts(globalIds: readonly number[]): Promise<{ loaded: number; dropped: number }>;
  stats(): WorkerStats;
  close(): Promise<void>;
}

export interface LayerTraffic {
  rowsSent: number;
  rowsReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface WorkerStats {
  readonly workerId: string;
  readonly ticks: number;
  readonly layers: readonly LayerTraffic[];
  /** Rows computed per global expert. */
  readonly expertRows: readonly number[];
  /** Expert cache figures when the worker runs under a device budget (or on an expert device). */
  readonly cache?: CacheStats;
  /** Residual-reuse states this worker made and keeps for the scheduler to name (kept-reuse-states.ts). */
  readonly reuseKept?: { readonly states: number; readonly bytes: number };
}

export interface WorkerRuntimeOptions {
  readonly id: string;
  readonly parts: ModelParts;
  readonly peers: PeerClient;
  /** An owner gives up on a layer whose homes have not all sent within this time. */
  readonly exchangeTimeoutMs?: number;
  /**
   * Experts run on an expert device under a memory budget (predictive cache). Without
   * it, experts run on `parts` and every held expert stays loaded.
   */
  readonly residency?: Residency;
  /**
   * Model calls go through a compute gate (experts first, an event-loop turn before
   * each; see compute-gate.ts). `false` calls the model directly. Default: on, with
   * DEFAULT_GATE_TURNS turns.
   */
  readonly gate?: GateOptions | false;
  /**
   * Experts that SetExperts loads are run at this tick size before it answers (see
   * warm-up-parts.ts), so a new owner's first tick is not slow. Default: no warm-up. Not used
   * under a residency (the cache decides what is loaded when).
   */
  readonly warmUp?: WarmUpOptions;
  /** Most bytes of residual-reuse states kept for the scheduler to name by tick (default DEFAULT_REUSE_KEEP_BYTES; 0: none, every state comes with its tick). */
  readonly reuseKeepBytes?: number;
}

/** Long enough for a slow peer's dense layer, short enough to notice a dead one. */
export const DEFAULT_EXCHANGE_TIMEOUT_MS = 15_000;

/**
 * A worker's runtime: its home side (homeExecutor: its images' dense parts, their rows
 * exchanged with the experts' holders), its owner side (ExpertOwner: the experts it
 * holds, run over every home's rows) and the experts it holds (HeldExperts: on its
 * parts, or on an expert device under a budget).
 */
class Runtime implements WorkerRuntime {
  private readonly parts: ModelParts;
  private ticks = 0;
  private readonly traffic: LayerTraffic[];
  private readonly E: number;
  private readonly held: HeldExperts;
  private readonly owner: ExpertOwner;
  private readonly home: HomeContext;

  constructor(
    readonly id: string,
    parts: ModelParts,
    peers: PeerClient,
    timeoutMs: number,
    residency: Residency | undefined,
    gate: GateOptions | false,
    warmUp: WarmUpOptions | undefined,
    private readonly kept: KeptReuseStates,
  ) {
    this.parts = gate === false ? parts : gatedParts(parts, createComputeGate(gate));
    const m = parts.manifest;
    const L = m.architecture.numLayers;
    const D = m.architecture.hiddenSize;
    this.E = m.moe.numExperts;
    this.traffic = Array.from({ length: L }, () => ({ rowsSent: 0, rowsReceived: 0, bytesSent: 0, bytesReceived: 0 }));
    this.held = new HeldExperts(this.parts, residency, warmUp, partsExpertRunner(this.parts, { loadMissing: true }));
    this.owner = new ExpertOwner(D, this.E, L, timeoutMs, this.traffic, this.held);
    this.home = { id, D, E: this.E, layers: L, peers, traffic: this.traffic, exchangeLocal: (msg) => this.owner.exchange(msg, true) };
  }

  async runTick(req: TickRequestMsg): Promise<TickResponseMsg> {
    const m = this.parts.manifest;
    if (req.owners.length !== m.architecture.numLayers * this.E) {
      throw new SwitchyardError(`tick ${req.tick}: owners has ${req.owners.length} entries, the model has ${m.architecture.numLayers * this.E} experts`, Code.InvalidArgument);
    }
    if (req.reuseRelease) this.kept.release(req.reuseRelease);
    if (req.predicted) this.held.predict(req.tick, req.predicted);
    const L = m.architecture.numLayers;
    // Micro-batches run side by side: while one waits for its exchange, another computes.
    // Every home runs the same number (holders wait for each home's part of each).
    const micros = Math.max(1, Math.floor(req.microBatches ?? 1));
    // The cache's tick starts now, so the first layers' prefetch overlaps embed and dense.
    this.held.beginTick(req.tick, micros);
    if (req.items.length === 0) {
      // A worker without images this tick still owns experts: the call carries the prediction.
      return { velocities: new Float32Array(0), routing: new Int16Array(0), routingWeights: new Float32Array(0), expertsUsed: new Uint8Array(0), denseMs: 0, expertMs: 0 };
    }
    this.ticks++;
    const P = m.image.channels * m.image.height * m.image.width;
    const T = m.architecture.tokens;
    const K = m.moe.topK;
    const n = req.items.length;
    const velocities = new Float32Array(n * P);
    const routing = new Int16Array(n * L * T * K);
    const routingWeights = new Float32Array(n * L * T * K);
    const expertsUsed = createExpertsUsed(n, L * this.E);
    // Residual-reuse states named by the tick that made them come from those this worker
    // kept; an item whose state is no longer here is deferred (not evaluated: the
    // scheduler sends it again with the state), so results never depend on what is kept.
    const deferred: number[] = [];
    const reuseIn = req.items.map((it, i): ReuseRequest | undefined => {
      const r = it.reuse;
      if (!r?.stateTick) return r;
      const state = this.kept.get(reuseKey(it.requestId, it.imageIndex), r.stateTick);
      if (state) return { threshold: r.threshold, state };
      deferred.push(i);
      return undefined;
    });
    const skip = new Set(deferred);
    const parts = Array.from({ length: micros }, (_, k) => req.items.map((_, i) => i).filter((i) => i % micros === k && !skip.has(i)));
    const reuse: ReuseResultMsg[] = [];
    let denseMs = 0;
    let expertMs = 0;
    await Promise.all(
      parts.map(async (idx, micro) => {
        if (idx.length === 0) return sendEmpty(this.home, req, micro, micros);
        const engine = createEngine({ parts: this.parts, executor: homeExecutor(this.home, req, micro, micros), maxBatchRows: Number.MAX_SAFE_INTEGER });
        const res = await engine.forward(idx.map((i) => ({ x: req.items[i]!.x, t: req.items[i]!.t, label: req.items[i]!.label, guidance: req.items[i]!.guidance, ...(reuseIn[i] ? { reuse: reuseIn[i] } : {}) })));
        denseMs += res.timings.denseMs;
        expertMs += res.timings.expertMs;
        idx.forEach((i, j) => {
          velocities.set(res.velocities[j]!, i * P);
          const row = res.rows[j]![0]!;
          for (let l = 0; l < L; l++) {
            const lr = res.routing[l]!;
            routing.set(lr.experts.subarray(row * T * K, (row + 1) * T * K), (i * L + l) * T * K);
            routingWeights.set(lr.weights.subarray(row * T * K, (row + 1) * T * K), (i * L + l) * T * K);
          }
          // Every row of the item (both CFG branches): what it will likely need next step.
          for (const r of res.rows[j]!)
            for (let l = 0; l < L; l++) {
              const ex = res.routing[l]!.experts;
              for (let q = r * T * K; q < (r + 1) * T * K; q++) if (ex[q]! >= 0) markExpertUsed(expertsUsed, L * this.E, i, l * this.E + ex[q]!);
            }
          const o = res.reuse?.[j];
          // A reused item's state is unchanged: only a full evaluation's goes back (and is
          // kept here, for the scheduler to name next time).
          if (o?.reused) reuse.push({ item: i, reused: true, distance: o.distance });
          else if (o) {
            this.kept.put(reuseKey(req.items[i]!.requestId, req.items[i]!.imageIndex), req.tick, o.state);
            reuse.push({ item: i, reused: false, distance: o.distance, state: o.state, ...(o.state.previous ? { previousIsInput: true } : {}) });
          }
        });
      }),
    );
    reuse.sort((a, b) => a.item - b.item);
    // Deferred items route nowhere (zero weights); their velocities stay zero.
    for (const i of deferred) routing.fill(-1, i * L * T * K, (i + 1) * L * T * K);
    return { velocities, routing, routingWeights, expertsUsed, ...(reuse.length > 0 ? { reuse } : {}), ...(deferred.length > 0 ? { deferred } : {}), denseMs, expertMs };
  }

  exchange(req: ExchangeRequestMsg): Promise<ExchangeResponseMsg> {
    return this.owner.exchange(req);
  }

  setExperts(globalIds: readonly number[]): Promise<{ loaded: number; dropped: number }> {
    return this.held.set(globalIds);
  }

  stats(): WorkerStats {
    const residency = this.held.residency;
    return { workerId: this.id, ticks: this.ticks, layers: this.traffic.map((t) => ({ ...t })), expertRows: [...this.owner.expertRows], ...(residency ? { cache: residency.stats() } : {}), reuseKept: this.kept.stats() };
  }

  async close(): Promise<void> {
    this.owner.close();
    await this.held.close();
  }
}

/** Totals over layers (and the cache's counters), as heartbeats and /metrics carry them. */
export function trafficTotals(s: WorkerStats): WorkerTraffic {
  const sum = (k: keyof LayerTraffic) => s.layers.reduce((a, l) => a + l[k], 0);
  const c = s.cache;
  return {
    ticks: s.ticks, rowsSent: sum("rowsSent"), rowsReceived: sum("rowsReceived"), bytesSent: sum("bytesSent"), bytesReceived: sum("bytesReceived"),
    expertRows: s.expertRows.reduce((a, b) => a + b, 0),
    ...(c ? { cache: { ...c, budgetBytes: c.budgetBytes ?? c.residentBytes } } : {}),
  };
}

export function createWorkerRuntime(options: WorkerRuntimeOptions): WorkerRuntime {
  return new Runtime(options.id, options.parts, options.peers, options.exchangeTimeoutMs ?? DEFAULT_EXCHANGE_TIMEOUT_MS, options.residency, options.gate ?? {}, options.warmUp, new KeptReuseStates(options.reuseKeepBytes ?? DEFAULT_REUSE_KEEP_BYTES));
}

/** Workers in this process reaching each other by direct calls (embedded mode, tests). */
export type LocalPeers = PeerClient & { add(rt: WorkerRuntime): void; remove(id: string): void };

export function createLocalPeers(): LocalPeers {
  const map = new Map<string, WorkerRuntime>();
  return {
    add: (rt) => void map.set(rt.id, rt),
    remove: (id) => void map.delete(id),
    async exchange(peer, req) {
      const rt = map.get(peer);
      if (!rt) throw new SwitchyardError(`worker ${peer} is not reachable`, Code.Unavailable);
      return rt.exchange(req);
    },
  };
}
