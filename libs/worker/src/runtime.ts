import { copiesOf, createExpertsUsed, markExpertUsed, servingCopy } from "@switchyard/contract";
import { type ExpertExecutor, type ExpertGroups, type LayerExpertRunner, alongside, createEngine, expertChunks, partsExpertRunner } from "@switchyard/engine";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { ModelParts } from "@switchyard/model";
import type { CacheStats, Residency, TickPrediction } from "@switchyard/expert-cache";
import { type GateOptions, createComputeGate, gatedParts } from "./compute-gate";
import { type WarmUpOptions, warmUpExperts } from "./warm-up-parts";
import { type ExchangeRequestMsg, type ExchangeResponseMsg, type PeerClient, type TickRequestMsg, type TickResponseMsg, type WorkerTraffic, rowSource } from "@switchyard/proto";

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
}

/** Long enough for a slow peer's dense layer, short enough to notice a dead one. */
export const DEFAULT_EXCHANGE_TIMEOUT_MS = 15_000;

interface Contribution {
  readonly req: ExchangeRequestMsg;
  readonly resolve: (r: ExchangeResponseMsg) => void;
  readonly reject: (e: unknown) => void;
}

interface Barrier {
  readonly expected: ReadonlySet<string>;
  readonly got: Map<string, Contribution>;
  readonly timer: NodeJS.Timeout;
}

class Runtime implements WorkerRuntime {
  private readonly parts: ModelParts;
  private readonly barriers = new Map<string, Barrier>();
  /** Gathered expert inputs of the layers being computed (owners reuse them). */
  private readonly scratch = createScratch();
  private ticks = 0;
  private readonly traffic: LayerTraffic[];
  private readonly expertRows: number[];
  private readonly D: number;
  private readonly E: number;
  private readonly timeoutMs: number;

  /** Predictions of ticks announced by the scheduler, by tick. */
  private readonly predictions = new Map<number, Int32Array>();
  /** The tick the residency is in (owners see a tick through its exchanges). */
  private cacheTick: number | undefined;
  /** Micro-batches of the current tick that ran their last layer here. */
  private lastLayerRuns = 0;
  private lastBegunTick = -Infinity;

  constructor(
    readonly id: string,
    parts: ModelParts,
    private readonly peers: PeerClient,
    timeoutMs: number,
    private readonly residency: Residency | undefined,
    gate: GateOptions | false,
    private readonly warmUp: WarmUpOptions | undefined,
  ) {
    this.parts = gate === false ? parts : gatedParts(parts, createComputeGate(gate));
    const m = parts.manifest;
    this.D = m.architecture.hiddenSize;
    this.E = m.moe.numExperts;
    this.timeoutMs = timeoutMs;
    this.traffic = Array.from({ length: m.architecture.numLayers }, () => ({ rowsSent: 0, rowsReceived: 0, bytesSent: 0, bytesReceived: 0 }));
    this.expertRows = new Array(m.architecture.numLayers * this.E).fill(0);
    this.runOnParts = partsExpertRunner(this.parts, { loadMissing: true });
  }

  async runTick(req: TickRequestMsg): Promise<TickResponseMsg> {
    const m = this.parts.manifest;
    if (req.owners.length !== m.architecture.numLayers * this.E) {
      throw new SwitchyardError(`tick ${req.tick}: owners has ${req.owners.length} entries, the model has ${m.architecture.numLayers * this.E} experts`, Code.InvalidArgument);
    }
    if (req.predicted) {
      this.predictions.set(req.tick, req.predicted);
      for (const t of this.predictions.keys()) if (t < req.tick - 4) this.predictions.delete(t);
    }
    const L = m.architecture.numLayers;
    // Micro-batches run side by side: while one waits for its exchange, another computes.
    // Every home runs the same number (holders wait for each home's part of each).
    const micros = Math.max(1, Math.floor(req.microBatches ?? 1));
    // The cache's tick starts now, so the first layers' prefetch overlaps embed and dense.
    this.beginCacheTick(req.tick, micros);
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
    const parts = Array.from({ length: micros }, (_, k) => req.items.map((_, i) => i).filter((i) => i % micros === k));
    let denseMs = 0;
    let expertMs = 0;
    await Promise.all(
      parts.map(async (idx, micro) => {
        if (idx.length === 0) return this.sendEmpty(req, micro, micros);
        const engine = createEngine({ parts: this.parts, executor: this.executor(req, micro, micros), maxBatchRows: Number.MAX_SAFE_INTEGER });
        const res = await engine.forward(idx.map((i) => req.items[i]!).map((it) => ({ x: it.x, t: it.t, label: it.label, guidance: it.guidance })));
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
              for (let q = r * T * K; q < (r + 1) * T * K; q++) markExpertUsed(expertsUsed, L * this.E, i, l * this.E + ex[q]!);
            }
        });
      }),
    );
    return { velocities, routing, routingWeights, expertsUsed, denseMs, expertMs };
  }

  /** A micro-batch without images: its (empty) part of every layer's exchange still goes to every holder. */
  private async sendEmpty(req: TickRequestMsg, micro: number, micros: number): Promise<void> {
    const run = this.executor(req, micro, micros);
    const E = this.E;
    const empty: ExpertGroups = { numExperts: E, offsets: new Int32Array(E + 1), row: new Int32Array(0), weight: new Float32Array(0) };
    for (let l = 0; l < this.parts.manifest.architecture.numLayers; l++) await run.runLayer(l, new Float32Array(0), empty, 0, async () => new Float32Array(0));
  }

  /** The ExpertExecutor of one tick: splits each layer's assignments by owner. */
  private executor(req: TickRequestMsg, micro = 0, micros = 1): ExpertExecutor {
    // Every home sends every expert holder one message per layer (holders wait for all homes).
    const owners = [...new Set([...req.owners, ...(req.replicas ?? []).flat()])].sort();
    // Experts with redundant copies (the rest have one holder, their owner).
    const copies = (g: number): readonly string[] | undefined => (req.replicas?.[g]?.length ? copiesOf(req, g) : undefined);
    const slot = new Map(owners.map((w, k) => [w, k]));
    const W = owners.length;
    return {
      runLayer: async (layer: number, u: Float32Array, groups: ExpertGroups, rows: number, init: () => Promise<Float32Array>) => {
        const D = this.D;
        const nA = groups.row.length;
        // Split the assignments by owner (typed arrays, one pass): per owner the unique
        // rows it needs (first-use order), and per assignment its local row, expert, and
        // position in the engine's expert-major order.
        const nRows = new Int32Array(W);
        const nAs = new Int32Array(W);
        const rowsOf = owners.map(() => new Int32Array(nA));
        const ar = owners.map(() => new Int32Array(nA));
        const ae = owners.map(() => new Int32Array(nA));
        const pos = owners.map(() => new Int32Array(nA));
        const local = new Int32Array(rows * W).fill(-1); // [row, owner] → local row
        for (let e = 0; e < groups.numExperts; e++) {
          const g = layer * this.E + e;
          const owner = req.owners[g]!;
          // With copies, the one dispatch rule (servingCopy) picks the copy per row.
          const c = copies(g);
          const fixed = slot.get(owner);
          if (fixed === undefined) throw new SwitchyardError(`expert ${layer}/${e} owner ${owner} is unknown`, Code.Internal);
          for (let i = groups.offsets[e]!; i < groups.offsets[e + 1]!; i++) {
            const r = groups.row[i]!;
            const k = c ? slot.get(servingCopy(c, this.id, r))! : fixed;
            let l = local[r * W + k]!;
            if (l < 0) {
              l = nRows[k]!++;
              local[r * W + k] = l;
              rowsOf[k]![l] = r;
            }
            const j = nAs[k]!++;
            ar[k]![j] = l;
            ae[k]![j] = e;
            pos[k]![j] = i;
          }
        }
        // Where each assignment's expert output is (engine's expert-major order): chunk
        // and float offset, so the sum below reads the answers in place.
        const chunkOf = new Int32Array(nA);
        const offOf = new Int32Array(nA);
        const chunks: Float32Array[] = [];
        const exchanges = owners.map(async (owner, k) => {
          const n = nAs[k]!;
          const msg: ExchangeRequestMsg = {
            tick: req.tick,
            layer,
            from: this.id,
            homes: req.homes,
            rows: nRows[k]!,
            u: { src: u, index: rowsOf[k]!.subarray(0, nRows[k]!), dim: D },
            assignRow: ar[k]!.subarray(0, n),
            assignExpert: ae[k]!.subarray(0, n),
            ...(micros > 1 ? { micro, micros } : {}),
          };
          let out: readonly Float32Array[];
          if (owner === this.id) out = (await this.exchange(msg, true)).y;
          else {
            const t = this.traffic[layer]!;
            t.rowsSent += msg.rows;
            t.bytesSent += msg.rows * D * 4 + msg.assignRow.byteLength + msg.assignExpert.byteLength;
            out = (await this.peers.exchange(owner, msg)).y;
            for (const c of out) t.bytesReceived += c.byteLength;
          }
          const p = pos[k]!;
          let j = 0;
          for (const c of out) {
            const q = chunks.push(c) - 1;
            for (let o = 0; o + D <= c.length && j < n; o += D, j++) {
              chunkOf[p[j]!] = q;
              offOf[p[j]!] = o;
            }
          }
          const floats = out.reduce((a, c) => a + c.length, 0);
          if (j !== n || floats !== n * D) throw new SwitchyardError(`exchange with ${owner}: ${floats / D} outputs for ${n} assignments`, Code.Internal);
        });
        // The rows are on their way: the shared expert (the accumulator) runs meanwhile.
        const [acc] = await alongside(Promise.all(exchanges), init);
        // Weighted sum in ascending expert order per row, exactly as the in-process
        // engine does it (scatterAddWeighted), so that results are bitwise the same
        // wherever experts live (a different summation order flips near-tie routing
        // decisions later on).
        const { row, weight } = groups;
        for (let i = 0; i < nA; i++) {
          const y = chunks[chunkOf[i]!]!;
          const o = offOf[i]!;
          const r = row[i]! * D;
          const w = weight[i]!;
          for (let d = 0; d < D; d++) acc[r + d] = acc[r + d]! + y[o + d]! * w;
        }
        return acc;
      },
    };
  }

  exchange(req: ExchangeRequestMsg, local = false): Promise<ExchangeResponseMsg> {
    if (!local) {
      const t = this.traffic[req.layer];
      if (!t) return Promise.reject(new SwitchyardError(`layer ${req.layer} must be < ${this.traffic.length}`, Code.InvalidArgument));
      t.rowsReceived += req.rows;
      t.bytesReceived += req.rows * this.D * 4 + req.assignRow.byteLength + req.assignExpert.byteLength;
    }
    const bad = invalidExchange(req, this.D, this.E);
    if (bad) return Promise.reject(new SwitchyardError(`exchange from ${req.from}: ${bad}`, Code.InvalidArgument));
    const key = `${req.tick}/${req.micro ?? 0}/${req.layer}`;
    let b = this.barriers.get(key);
    if (!b) {
      const timer = setTimeout(() => this.failBarrier(key, new SwitchyardError(`tick ${req.tick} layer ${req.layer}: not every home sent its rows within ${this.timeoutMs} ms`, Code.Unavailable)), this.timeoutMs);
      timer.unref?.();
      b = { expected: new Set(req.homes), got: new Map(), timer };
      this.barriers.set(key, b);
    }
    const barrier = b;
    return new Promise<ExchangeResponseMsg>((resolve, reject) => {
      if (barrier.got.has(req.from)) {
        reject(new SwitchyardError(`tick ${req.tick} layer ${req.layer}: ${req.from} sent twice`, Code.AlreadyExists));
        return;
      }
      barrier.got.set(req.from, { req, resolve, reject });
      if ([...barrier.expected].every((h) => barrier.got.has(h))) {
        clearTimeout(barrier.timer);
        this.barriers.delete(key);
        this.computeLayer(req.tick, req.layer, [...barrier.got.values()], req.micros ?? 1).catch((e) => {
          for (const c of barrier.got.values()) c.reject(e);
        });
      }
    });
  }

  private failBarrier(key: string, e: SwitchyardError): void {
    const b = this.barriers.get(key);
    if (!b) return;
    this.barriers.delete(key);
    for (const c of b.got.values()) c.reject(e);
  }

  /** Runs each local expert once over the rows of every contribution. */
  private async computeLayer(tick: number, layer: number, contribs: Contribution[], micros: number): Promise<void> {
    const D = this.D;
    const E = this.E;
    // assignments of all contributions, grouped by expert
    const counts = new Int32Array(E + 1);
    for (const c of contribs) for (const e of c.req.assignExpert) counts[e + 1]!++;
    for (let e = 0; e < E; e++) counts[e + 1]! += counts[e]!;
    const n = counts[E]!;
    const who = new Int32Array(n);
    const row = new Int32Array(n);
    const slot = new Int32Array(n);
    const cursor = counts.slice(0, E);
    contribs.forEach((c, ci) => {
      const r = c.req;
      for (let i = 0; i < r.assignExpert.length; i++) {
        const p = cursor[r.assignExpert[i]!]!++;
        who[p] = ci;
        row[p] = r.assignRow[i]!;
        slot[p] = i;
      }
    });
    const active: number[] = [];
    for (let e = 0; e < E; e++) if (counts[e + 1]! > counts[e]!) active.push(e);
    // On an expert device x travels to its thread (a fresh buffer); on this process's
    // parts it is only read during the calls, so a scratch buffer serves again.
    const x = this.residency ? new Float32Array(n * D) : this.scratch.take(n * D);
    const sources = contribs.map((c) => rowSource(c.req.u));
    for (let i = 0; i < n; i++) {
      const { src, index } = sources[who[i]!]!;
      const s = (index ? index[row[i]!]! : row[i]!) * D;
      const o = i * D;
      for (let d = 0; d < D; d++) x[o + d] = src[s + d]!;
    }
    const off = Int32Array.from([...active.map((e) => counts[e]!), n]);
    const experts = Int32Array.from(active);
    let outs: readonly Float32Array[];
    if (this.residency) outs = expertChunks(await this.runOnDevice(tick, layer, experts, off, x, micros), off, D);
    else {
      try {
        outs = await this.runOnParts(layer, experts, off, x);
      } finally {
        this.scratch.give(x);
      }
    }
    // Rows [a, b) of the layer's output (expert-major), which never straddle two experts here.
    const activeIdx = new Int32Array(E);
    active.forEach((e, k) => (activeIdx[e] = k));
    const rowsOf = (e: number, a: number, b: number) => outs[activeIdx[e]!]!.subarray((a - counts[e]!) * D, (b - counts[e]!) * D);
    for (const e of active) this.expertRows[layer * E + e]! += counts[e + 1]! - counts[e]!;
    // Output per assignment (unweighted; the home weights and sums in canonical order).
    // Within an expert the contributions' assignments lie in contribution order, so a
    // home that sent its assignments expert by expert (as homes do) gets views on the
    // experts' outputs.
    const start = counts.slice(0, E);
    contribs.forEach((c, ci) => {
      const ae = c.req.assignExpert;
      if (!ascending(ae)) {
        const yc = new Float32Array(ae.length * D);
        for (const e of active) for (let i = counts[e]!; i < counts[e + 1]!; i++) if (who[i] === ci) yc.set(rowsOf(e, i, i + 1), slot[i]! * D);
        c.resolve({ y: [yc] });
        return;
      }
      const chunks: Float32Array[] = [];
      for (let i = 0; i < ae.length; ) {
        const e = ae[i]!;
        let j = i;
        while (j < ae.length && ae[j] === e) j++;
        const b = start[e]!;
        chunks.push(rowsOf(e, b, b + j - i));
        start[e] = b + j - i;
        i = j;
      }
      c.resolve({ y: chunks });
    });
  }

  /** Experts on this process's ModelParts; ones not loaded come from the host store (disk). */
  private readonly runOnParts: LayerExpertRunner;

  /** Starts tick `tick` in the residency (once; ticks only move forward). */
  private beginCacheTick(tick: number, micros: number): void {
    const r = this.residency;
    if (!r || tick <= this.lastBegunTick) return;
    if (this.cacheTick !== undefined) r.endTick();
    this.cacheTick = tick;
    this.lastBegunTick = tick;
    this.lastLayerRuns = 0;
    r.beginTick(predictionOf(this.predictions.get(tick), this.parts.manifest.architecture.numLayers, this.E), micros);
  }

  /** Experts on the expert device, under its cache; a tick starts at its RunTick or first layer here. */
  private async runOnDevice(tick: number, layer: number, experts: Int32Array, off: Int32Array, x: Float32Array, micros: number): Promise<Float32Array> {
    const r = this.residency!;
    // (an owner may see a peer's rows before its own RunTick)
    if (this.cacheTick !== tick) this.beginCacheTick(tick, micros);
    try {
      return await r.runLayer(layer, experts, off, x);
    } finally {
      // The tick ends here when every micro-batch has run its last layer.
      if (layer === this.parts.manifest.architecture.numLayers - 1 && ++this.lastLayerRuns >= micros && this.cacheTick === tick) {
        r.endTick();
        this.cacheTick = undefined;
      }
    }
  }

  async setExperts(globalIds: readonly number[]): Promise<{ loaded: number; dropped: number }> {
    const want = new Set(globalIds);
    const L = this.parts.manifest.architecture.numLayers;
    for (const g of want) if (!(Number.isInteger(g) && g >= 0 && g < L * this.E)) throw new SwitchyardError(`expert ${g} must be an integer >= 0 and < ${L * this.E}`, Code.InvalidArgument);
    if (this.residency) {
      const before = this.residency.stats().heldExperts;
      await this.residency.setHeld([...want]);
      const held = this.residency.stats().heldExperts;
      return { loaded: Math.max(0, held - before), dropped: Math.max(0, before - held) };
    }
    const loaded: [number, number][] = [];
    let dropped = 0;
    for (const g of want) {
      const l = Math.floor(g / this.E);
      const e = g % this.E;
      if (l >= L) throw new SwitchyardError(`expert ${g} must be < ${L * this.E}`, Code.InvalidArgument);
      if (!this.parts.hasExpert(l, e)) {
        await this.parts.loadExpert(l, e);
        loaded.push([l, e]);
      }
    }
    if (this.warmUp) await warmUpExperts(this.parts, loaded, this.warmUp);
    for (let l = 0; l < L; l++)
      for (let e = 0; e < this.E; e++)
        if (!want.has(l * this.E + e) && this.parts.hasExpert(l, e)) {
          await this.parts.unloadExpert(l, e);
          dropped++;
        }
    return { loaded: loaded.length, dropped };
  }

  stats(): WorkerStats {
    return { workerId: this.id, ticks: this.ticks, layers: this.traffic.map((t) => ({ ...t })), expertRows: [...this.expertRows], ...(this.residency ? { cache: this.residency.stats() } : {}) };
  }

  async close(): Promise<void> {
    for (const key of [...this.barriers.keys()]) this.failBarrier(key, new SwitchyardError("worker is shutting down", Code.Unavailable));
    await this.residency?.close();
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
  return new Runtime(options.id, options.parts, options.peers, options.exchangeTimeoutMs ?? DEFAULT_EXCHANGE_TIMEOUT_MS, options.residency, options.gate ?? {}, options.warmUp);
}

/**
 * Float32 buffers handed out and given back: a worker gathers every layer's expert
 * inputs (6.4 MB per layer at 128 images), and fresh buffers are external memory that
 * V8 answers with full mark-compacts every 64 MB.
 */
function createScratch(max = 4) {
  const free: Float32Array[] = [];
  return {
    /** A view of exactly `n` floats; its contents are unspecified. */
    take(n: number): Float32Array {
      const i = free.findIndex((b) => b.length >= n);
      const b = i >= 0 ? free.splice(i, 1)[0]! : new Float32Array(Math.ceil(n * 1.25));
      return b.subarray(0, n);
    },
    give(v: Float32Array): void {
      const b = new Float32Array(v.buffer as ArrayBuffer);
      if (free.length < max) free.push(b);
      else {
        // keep the largest
        const k = free.reduce((m, f, j) => (f.length < free[m]!.length ? j : m), 0);
        if (free[k]!.length < b.length) free[k] = b;
      }
    },
  };
}

/** Why an exchange request cannot be served, or undefined. */
function invalidExchange(req: ExchangeRequestMsg, D: number, E: number): string | undefined {
  const { src, index } = rowSource(req.u);
  if (index ? index.length !== req.rows || src.length % D !== 0 : src.length !== req.rows * D) return `u must hold rows*D = ${req.rows * D} floats`;
  if (req.assignRow.length !== req.assignExpert.length) return `assign_row has ${req.assignRow.length} entries, assign_expert ${req.assignExpert.length}: they must be equal`;
  for (let i = 0; i < req.assignRow.length; i++) {
    if (!(req.assignRow[i]! >= 0 && req.assignRow[i]! < req.rows)) return `assign_row[${i}] = ${req.assignRow[i]} must be >= 0 and < rows (${req.rows})`;
    if (!(req.assignExpert[i]! >= 0 && req.assignExpert[i]! < E)) return `assign_expert[${i}] = ${req.assignExpert[i]} must be >= 0 and < ${E}`;
  }
  return undefined;
}

function ascending(a: Int32Array): boolean {
  for (let i = 1; i < a.length; i++) if (a[i]! < a[i - 1]!) return false;
  return true;
}

/** The scheduler's per-expert counts as a per-layer prediction. */
function predictionOf(counts: Int32Array | undefined, layers: number, experts: number): TickPrediction | undefined {
  if (!counts || counts.length !== layers * experts) return undefined;
  return Array.from({ length: layers }, (_, l) => {
    const m = new Map<number, number>();
    for (let e = 0; e < experts; e++) if (counts[l * experts + e]! > 0) m.set(l * experts + e, counts[l * experts + e]!);
    return m;
  });
}

/** Peers as direct calls into runtimes of the same process (embedded mode, tests). */
/** Workers in this process reaching each other by direct calls. */
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
