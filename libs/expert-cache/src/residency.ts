import { Code, SwitchyardError } from "@switchyard/errors";
import type { CacheFigures } from "@switchyard/proto";
import { type ExpertCache, type ExpertId, createExpertCache, createPolicy, predictivePolicy } from "./cache";
import { PredictedTick } from "./predicted-tick";

/**
 * Where experts run: the resident set of one accelerator and the stream that runs
 * them. Commands execute strictly in the order issued (a CUDA stream's semantics), so a
 * prefetch issued right after a layer's run loads while the caller computes the next
 * dense part, and an eviction never overtakes a run that uses the expert. Experts are
 * global ids (layer · E + e).
 */
export interface ExpertDevice {
  /** Reads experts into the host store (serialized bytes in host memory). */
  stage(ids: readonly number[]): Promise<{ ms: number; bytes: number }>;
  /** Makes experts resident. */
  load(ids: readonly number[]): Promise<{ ms: number }>;
  evict(ids: readonly number[]): Promise<void>;
  /**
   * Runs expert `experts[i]` over rows offsets[i]..offsets[i+1] of x ([n, D]); experts not
   * resident are loaded first (on demand). x may be transferred (do not reuse it).
   */
  run(experts: Int32Array, offsets: Int32Array, x: Float32Array): Promise<DeviceRun>;
  residentIds(): Promise<number[]>;
  close(): Promise<void>;
}

export interface DeviceRun {
  /** [n, D] outputs in the order of x. */
  readonly y: Float32Array;
  /** Time the device spent loading experts that were not resident. */
  readonly loadMs: number;
  readonly computeMs: number;
  /** Experts loaded on demand. */
  readonly loaded: readonly number[];
}

/** Some experts of a layer run (indices `idx` into `experts`) with their rows packed together. */
export interface ExpertSelection {
  readonly idx: readonly number[];
  readonly experts: Int32Array;
  readonly offsets: Int32Array;
  readonly x: Float32Array;
}

/** Packs the rows of experts[idx] out of a run's x ([n, D], ranges by offsets). */
export function selectExperts(experts: Int32Array, offsets: Int32Array, x: Float32Array, D: number, idx: readonly number[]): ExpertSelection {
  const off = new Int32Array(idx.length + 1);
  idx.forEach((i, j) => (off[j + 1] = off[j]! + offsets[i + 1]! - offsets[i]!));
  const xs = new Float32Array(off[idx.length]! * D);
  idx.forEach((i, j) => xs.set(x.subarray(offsets[i]! * D, offsets[i + 1]! * D), off[j]! * D));
  return { idx, experts: Int32Array.from(idx, (i) => experts[i]!), offsets: off, x: xs };
}

/** Writes a selection's outputs `ys` back to their rows of the whole run's `y`. */
export function placeSelection(y: Float32Array, offsets: Int32Array, D: number, sel: ExpertSelection, ys: Float32Array): void {
  sel.idx.forEach((i, j) => y.set(ys.subarray(sel.offsets[j]! * D, sel.offsets[j + 1]! * D), offsets[i]! * D));
}

/** Per layer: predicted use (e.g. images expected to route to it) of each global expert. */
export type TickPrediction = readonly ReadonlyMap<ExpertId, number>[];

/** Likely experts of layer l+1 given one of layer l, for correcting a prediction after a miss. */
export type Successors = (layer: number, expert: number) => readonly number[];

export interface ResidencyOptions {
  readonly device: ExpertDevice;
  readonly layers: number;
  readonly experts: number;
  readonly sizeOf: (id: ExpertId) => number;
  /** Device bytes for experts; undefined (and no fraction) keeps every held expert resident. */
  readonly budgetBytes?: number;
  /** Or a fraction (0 < f <= 1) of the bytes of the experts the worker holds, following setHeld. */
  readonly budgetFraction?: number;
  /** lru | lfu | predictive (default). */
  readonly policy?: string;
  /** Layers ahead that prefetch targets (predictive only). */
  readonly lookahead?: number;
  readonly successors?: Successors;
}

/** The wire figures (counters Prometheus-style, plus the current residency) and what stays local. */
export type CacheStats = Omit<CacheFigures, "budgetBytes"> & {
  /** undefined: every held expert stays resident. */
  readonly budgetBytes: number | undefined;
  readonly heldExperts: number;
  readonly computeMs: number;
};

export interface Residency {
  /** The experts this worker may need (its host store); resident ones no longer held are dropped. */
  setHeld(ids: readonly ExpertId[]): Promise<void>;
  /**
   * Starts a tick; with a prediction, prefetches the first layers. `runsPerLayer`: how
   * many times each layer runs in this tick (micro-batches); a layer's experts stay
   * protected until its last run.
   */
  beginTick(prediction?: TickPrediction, runsPerLayer?: number): void;
  /** Runs layer `layer`'s experts (ids within the layer) over row ranges of x ([n, D]). */
  runLayer(layer: number, experts: Int32Array, offsets: Int32Array, x: Float32Array): Promise<Float32Array>;
  endTick(): void;
  stats(): CacheStats;
  close(): Promise<void>;
}

export { MIN_PREFETCH_ROWS } from "./predicted-tick";

/** One layer ahead: two evict experts needed sooner at tight budgets (measured by replay). */
export const DEFAULT_RESIDENCY_LOOKAHEAD = 1;

export function createResidency(o: ResidencyOptions): Residency {
  return new ResidencyImpl(o);
}

type Counters = { -readonly [K in keyof CacheStats]: CacheStats[K] };

class ResidencyImpl implements Residency {
  private readonly cache: ExpertCache | undefined;
  private readonly predictive: ReturnType<typeof predictivePolicy> | undefined;
  private readonly lookahead: number;
  private readonly held = new Set<ExpertId>();
  private readonly c: Counters;
  /** What this tick is predicted to need, and how each expert's rows went last time. */
  private readonly tick: PredictedTick;
  private loadedThisTick = new Set<ExpertId>();
  private usedThisTick = new Set<ExpertId>();
  private clock = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly device: ExpertDevice;
  private readonly largest: number;

  constructor(private readonly o: ResidencyOptions) {
    this.device = o.device;
    const name = o.policy ?? "predictive";
    this.lookahead = o.lookahead ?? DEFAULT_RESIDENCY_LOOKAHEAD;
    if (!Number.isInteger(this.lookahead) || this.lookahead < 0 || this.lookahead >= o.layers) {
      throw new SwitchyardError(`lookahead ${this.lookahead} must be an integer >= 0 and < ${o.layers}`, Code.InvalidArgument, { field: "lookahead" });
    }
    let largest = 0;
    for (let id = 0; id < o.layers * o.experts; id++) largest = Math.max(largest, o.sizeOf(id));
    this.largest = largest;
    if (o.budgetFraction !== undefined && !(o.budgetFraction > 0 && o.budgetFraction <= 1)) {
      throw new SwitchyardError(`budgetFraction ${o.budgetFraction} must be > 0 and <= 1`, Code.InvalidArgument, { field: "budgetFraction" });
    }
    if (o.budgetBytes !== undefined || o.budgetFraction !== undefined) {
      if (o.budgetBytes !== undefined && !(o.budgetBytes >= largest)) {
        throw new SwitchyardError(`expert budget ${o.budgetBytes} bytes must hold at least the largest expert (${largest} bytes)`, Code.InvalidArgument, { field: "budgetBytes" });
      }
      this.predictive = name === "predictive" ? predictivePolicy() : undefined;
      this.cache = createExpertCache({ budgetBytes: o.budgetBytes ?? largest, policy: this.predictive ?? createPolicy(name), sizeOf: o.sizeOf });
    } else createPolicy(name); // validates the name
    this.tick = new PredictedTick(o.layers, o.experts);
    this.c = {
      policy: this.cache ? name : "all-resident", budgetBytes: this.cache?.budgetBytes, residentBytes: 0, residentExperts: 0, heldExperts: 0,
      ticks: 0, layerRuns: 0, needed: 0, hits: 0, misses: 0, loads: 0, bytesLoaded: 0, prefetchLoads: 0, wastedBytes: 0,
      stallMs: 0, demandLoadMs: 0, computeMs: 0, predicted: 0, predictedHits: 0,
    };
  }

  /** Serializes callers: residency decisions assume one layer at a time. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(f, f);
    this.tail = p.catch(() => undefined);
    return p;
  }

  setHeld(ids: readonly ExpertId[]): Promise<void> {
    return this.serial(async () => {
      const want = new Set(ids);
      const dropped = [...this.held].filter((id) => !want.has(id));
      const added = [...want].filter((id) => !this.held.has(id));
      for (const id of dropped) this.held.delete(id);
      for (const id of added) this.held.add(id);
      if (this.cache) {
        const evict = dropped.filter((id) => this.cache!.isResident(id));
        this.cache.apply({ load: [], evict, skipped: [] });
        if (this.o.budgetFraction !== undefined) {
          let held = 0;
          for (const id of this.held) held += this.o.sizeOf(id);
          const budget = Math.max(this.largest, Math.floor(this.o.budgetFraction * held));
          this.c.budgetBytes = budget;
          evict.push(...this.cache.resize(budget));
        }
        if (evict.length) await this.device.evict(evict);
        if (added.length) await this.device.stage(added);
      } else {
        if (dropped.length) await this.device.evict(dropped);
        if (added.length) {
          await this.device.stage(added);
          await this.device.load(added);
        }
      }
    });
  }

  beginTick(prediction?: TickPrediction, runsPerLayer = 1): void {
    this.c.ticks++;
    this.loadedThisTick = new Set();
    this.usedThisTick = new Set();
    this.tick.begin(prediction, this.held, runsPerLayer);
    if (this.tick.predicted && this.cache && this.predictive) {
      this.predictive.setPrediction(this.tick.scores(0));
      for (let k = 0; k < Math.min(this.o.layers, this.lookahead); k++) this.prefetch(k, new Set());
    }
  }

  /**
   * Issues loads (and the evictions they need) for layer k's predicted experts, except
   * ones that served fewer than MIN_PREFETCH_ROWS rows last time: such predictions often
   * fail, and a wrong prefetch costs a load and evicts something useful; if needed they
   * load on demand.
   */
  private prefetch(k: number, pinned: ReadonlySet<ExpertId>): void {
    const cache = this.cache!;
    const ids = this.tick.prefetchable(k).filter((id) => !cache.isResident(id));
    if (!ids.length) return;
    const plan = cache.plan([], ids, pinned);
    if (!plan.load.length) return;
    cache.apply(plan);
    if (plan.evict.length) void this.device.evict(plan.evict).catch(() => undefined);
    void this.device.load(plan.load).catch(() => undefined); // a failed prefetch shows up as a miss
    for (const id of plan.load) {
      this.loadedThisTick.add(id);
      this.c.bytesLoaded += this.o.sizeOf(id);
    }
    this.c.loads += plan.load.length;
    this.c.prefetchLoads += plan.load.length;
  }

  runLayer(layer: number, experts: Int32Array, offsets: Int32Array, x: Float32Array): Promise<Float32Array> {
    return this.serial(() => this.run(layer, experts, offsets, x));
  }

  private async run(layer: number, experts: Int32Array, offsets: Int32Array, x: Float32Array): Promise<Float32Array> {
    const E = this.o.experts;
    const D = offsets[experts.length]! > 0 ? x.length / offsets[experts.length]! : 0;
    const need = this.tick.ran(layer, experts, offsets);
    this.c.layerRuns++;
    this.c.needed += need.length;
    for (const id of need) this.usedThisTick.add(id);
    const seen = this.tick.observe(layer, need, this.o.successors, this.held);
    this.c.predicted += seen.predicted;
    this.c.predictedHits += seen.hits;
    if (!this.cache) {
      this.c.hits += need.length;
      return this.dispatch(layer, experts, offsets, x, true);
    }
    const cache = this.cache;
    if (this.predictive && this.tick.predicted) this.predictive.setPrediction(this.tick.scores(layer));
    // Experts the budget cannot hold at once run in chunks that fit.
    const chunks: ExpertId[][] = [];
    let cur: ExpertId[] = [];
    let bytes = 0;
    for (const id of need) {
      const s = this.o.sizeOf(id);
      if (cur.length && bytes + s > cache.budgetBytes) {
        chunks.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(id);
      bytes += s;
    }
    if (cur.length || !chunks.length) chunks.push(cur);
    if (chunks.length === 1) {
      this.admit(chunks[0]!);
      return this.dispatch(layer, experts, offsets, x, true);
    }
    const y = new Float32Array(x.length);
    const pos = new Map<number, number>();
    for (let i = 0; i < experts.length; i++) pos.set(layer * E + experts[i]!, i);
    for (const [ci, chunk] of chunks.entries()) {
      this.admit(chunk);
      const sel = selectExperts(experts, offsets, x, D, chunk.map((id) => pos.get(id)!));
      placeSelection(y, offsets, D, sel, await this.dispatch(layer, sel.experts, sel.offsets, sel.x, ci === chunks.length - 1));
    }
    return y;
  }

  /** Makes `ids` resident in the accounting (evicting by policy); counts hits and misses. */
  private admit(ids: ExpertId[]): void {
    const cache = this.cache!;
    for (const id of ids) {
      if (cache.isResident(id)) this.c.hits++;
      else this.c.misses++;
    }
    const plan = cache.plan(ids, [], new Set(ids));
    cache.apply(plan);
    if (plan.evict.length) void this.device.evict(plan.evict).catch(() => undefined);
    for (const id of plan.load) {
      this.loadedThisTick.add(id);
      this.c.bytesLoaded += this.o.sizeOf(id);
    }
    this.c.loads += plan.load.length; // loaded on demand by the run itself
    cache.access(ids, ++this.clock);
  }

  private async dispatch(layer: number, experts: Int32Array, offsets: Int32Array, x: Float32Array, prefetchAfter: boolean): Promise<Float32Array> {
    const E = this.o.experts;
    const t0 = performance.now();
    const p = this.device.run(Int32Array.from(experts, (e) => layer * E + e), offsets, x);
    // Prefetch right behind the run: it loads while the caller does the next dense part.
    // Seen from the next layer, this layer's experts are needed last (next tick), so
    // they make room first; the device runs commands in order, so evicting them cannot
    // overtake the run just issued and nothing needs pinning. Only the experts that
    // do not stay resident rotate: the bytes loaded per tick stay near the minimum.
    if (prefetchAfter && this.cache && this.predictive && this.tick.predicted && layer + 1 < this.o.layers) {
      this.predictive.setPrediction(this.tick.scores(layer + 1));
      for (let k = layer + 1; k <= Math.min(this.o.layers - 1, layer + this.lookahead); k++) this.prefetch(k, new Set());
    }
    const r = await p;
    const wall = performance.now() - t0;
    this.c.computeMs += r.computeMs;
    this.c.demandLoadMs += r.loadMs;
    this.c.stallMs += Math.max(0, wall - r.computeMs);
    return r.y;
  }

  endTick(): void {
    for (const id of this.loadedThisTick) if (!this.usedThisTick.has(id)) this.c.wastedBytes += this.o.sizeOf(id);
    this.loadedThisTick = new Set();
    this.usedThisTick = new Set();
    this.tick.end();
    this.predictive?.setPrediction(new Map());
  }

  stats(): CacheStats {
    const residentIds = this.cache ? this.cache.residentIds() : [...this.held];
    return {
      ...this.c,
      residentExperts: residentIds.length,
      residentBytes: residentIds.reduce((s, id) => s + this.o.sizeOf(id), 0),
      heldExperts: this.held.size,
    };
  }

  close(): Promise<void> {
    return this.serial(() => this.device.close());
  }
}

/** Successors with P(j | i) >= minP from transition counts ([L-1][E*E], e.g. placement's `transitions`). */
export function successorsFrom(counts: readonly Float64Array[], experts: number, minP = 0.2): Successors {
  const table = counts.map((m) =>
    Array.from({ length: experts }, (_, i) => {
      let total = 0;
      for (let j = 0; j < experts; j++) total += m[i * experts + j]!;
      const out: number[] = [];
      if (total > 0) for (let j = 0; j < experts; j++) if (m[i * experts + j]! / total >= minP) out.push(j);
      return out;
    }),
  );
  return (layer, expert) => table[layer]?.[expert] ?? [];
}
