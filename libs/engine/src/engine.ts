import { Code, SwitchyardError } from "@switchyard/errors";
import type { Manifest, ModelParts } from "@switchyard/model";
import { type GuidanceInterval, type SamplerState, advance, combineGuidance, guidanceAt, needsUnconditional, nextEval } from "@switchyard/sampler";
import { type ReuseOutcome, type ReuseRequest, addForecastResidual, forecastFactor, probeDistance, stateFits } from "./residual-reuse";
import { type ExpertGroups, type ExpertOutputs, type LayerRouting, gatherRows, groupByExpert, mixAndCombine, outputsPerExpert, routeTopK } from "./routing";

/**
 * The in-process engine: a batch of images (possibly at different sampler steps, with
 * different samplers and guidance) through every part of the model, top-k routing and
 * combining in TypeScript, one expert call per active expert per layer over all of
 * its rows. It is also the correctness oracle for the distributed runtime.
 *
 * Shapes: B batch rows (an image with guidance != 1 takes two: conditional and
 * unconditional), T tokens, D hidden, E experts, K top-k.
 */

/** Runs the experts of one MoE layer. The engine's default runs them locally; the
 *  distributed worker puts cross-worker dispatch behind the same interface. */
export interface ExpertExecutor {
  /**
   * Runs the routed experts of every row of u ([R, D]) and says where their outputs are;
   * the engine mixes them (weighted, in ascending expert order) into `base` and combines
   * the block in one pass (mixAndCombine). `init` computes the base (the shared expert's
   * output, or undefined without one): an executor calls it once, after it has sent the
   * routed experts on their way, so that the shared expert runs while they do (on another
   * thread or worker).
   */
  runLayer(layer: number, u: Float32Array, groups: ExpertGroups, rows: number, init: () => Promise<Float32Array | undefined>): Promise<LayerOutputs>;
}

/** A layer's expert outputs and the base (shared expert's output) they are mixed into. */
export interface LayerOutputs {
  readonly base: Float32Array | undefined;
  readonly outputs: ExpertOutputs;
}

/**
 * Runs a layer's experts (ids within the layer) over row ranges of x ([n, D]): expert
 * `experts[i]` over rows offsets[i]..offsets[i+1]-1. Returns one [rows_i, D] output per
 * expert, in order (a runner hands out its experts' outputs instead of copying them into
 * one buffer; `expertChunks` splits one that has a single [n, D] buffer).
 */
export type LayerExpertRunner = (layer: number, experts: Int32Array, offsets: Int32Array, x: Float32Array) => Promise<readonly Float32Array[]>;

/**
 * Awaits `init` (the accumulator) while `pending` (the routed experts, elsewhere) runs,
 * then both. `pending` is observed at once, so its failure is never left unhandled.
 */
export async function alongside<B, T>(pending: Promise<T>, init: () => Promise<B>): Promise<[B, T]> {
  const settled = pending.then((value) => ({ value }), (error: unknown) => ({ error }));
  const acc = await init();
  const r = await settled;
  if ("error" in r) throw r.error;
  return [acc, r.value];
}

/** Views on the per-expert row ranges of a single [n, D] output. */
export function expertChunks(y: Float32Array, offsets: Int32Array, D: number): Float32Array[] {
  return Array.from({ length: offsets.length - 1 }, (_, i) => y.subarray(offsets[i]! * D, offsets[i + 1]! * D));
}

/**
 * Experts on this process's ModelParts: one call per layer where the parts run
 * experts grouped (runExperts), else one per expert. With `loadMissing`, an
 * expert not loaded yet is loaded first (a worker taking over from its host store);
 * without, it is FAILED_PRECONDITION as ModelParts says.
 */
export function partsExpertRunner(parts: ModelParts, options: { loadMissing?: boolean } = {}): LayerExpertRunner {
  const D = parts.manifest.architecture.hiddenSize;
  return async (layer, experts, offsets, x) => {
    if (parts.runExperts) {
      if (options.loadMissing) {
        for (let i = 0; i < experts.length; i++) if (offsets[i + 1]! > offsets[i]! && !parts.hasExpert(layer, experts[i]!)) await parts.loadExpert(layer, experts[i]!);
      }
      return parts.runExperts(layer, experts, offsets, x);
    }
    const out: Float32Array[] = [];
    for (let i = 0; i < experts.length; i++) {
      const e = experts[i]!;
      if (offsets[i + 1] === offsets[i]) {
        out.push(new Float32Array(0));
        continue;
      }
      if (options.loadMissing && !parts.hasExpert(layer, e)) await parts.loadExpert(layer, e);
      out.push(await parts.expert(layer, e, x.subarray(offsets[i]! * D, offsets[i + 1]! * D), offsets[i + 1]! - offsets[i]!));
    }
    return out;
  };
}

/** The default executor: every expert of the layer on this process's ModelParts. */
export function createLocalExecutor(parts: ModelParts): ExpertExecutor {
  // The parts' runner is done with a layer's gathered rows when it resolves.
  return createBatchedExecutor(parts.manifest.architecture.hiddenSize, partsExpertRunner(parts), { reuseRows: true });
}

/**
 * An executor that hands a whole layer to `run` in one call (one message to an expert
 * device instead of one per expert), then combines in the engine's order: results are
 * bitwise those of the local executor. With `reuseRows`, the gathered rows go into one
 * buffer kept across layers (a runner that holds on to `x` after it resolves, or
 * transfers it, must not be given it): at batch 32 a fresh 3 MB buffer per layer cost
 * more than the copy into it.
 */
export function createBatchedExecutor(D: number, run: LayerExpertRunner, options: { reuseRows?: boolean } = {}): ExpertExecutor {
  let scratch: Float32Array<ArrayBuffer> = new Float32Array(0);
  const rowsBuffer = (floats: number): Float32Array<ArrayBuffer> => {
    if (!options.reuseRows) return new Float32Array(floats);
    if (scratch.length < floats) scratch = new Float32Array(Math.max(floats, Math.ceil(scratch.length * 1.5)));
    return scratch.subarray(0, floats);
  };
  return {
    async runLayer(layer, u, groups, _rows, init) {
      const { offsets, row } = groups;
      const active: number[] = [];
      for (let e = 0; e < groups.numExperts; e++) if (offsets[e + 1]! > offsets[e]!) active.push(e);
      const n = offsets[groups.numExperts]!;
      if (n === 0) return { base: await init(), outputs: outputsPerExpert(groups, [], D) };
      const x = gatherRows(u, D, row, 0, n, rowsBuffer(n * D));
      // Inactive experts own empty ranges, so the active ones' ranges tile 0..n.
      const off = new Int32Array(active.length + 1);
      active.forEach((e, i) => (off[i] = offsets[e]!));
      off[active.length] = n;
      const [base, y] = await alongside(run(layer, Int32Array.from(active), off, x), init);
      return { base, outputs: outputsPerExpert(groups, y, D) };
    },
  };
}

/** One model evaluation of one image. */
export interface EvalItem {
  /** [C*H*W] */
  readonly x: Float32Array;
  readonly t: number;
  readonly label: number;
  readonly guidance: number;
  /** Residual reuse for this evaluation (see residual-reuse.ts); absent: a full evaluation, as always. */
  readonly reuse?: ReuseRequest;
}

export interface ForwardResult {
  /** Velocity per item (guidance already combined), [C*H*W] each. */
  readonly velocities: Float32Array[];
  /** Routing per layer over the whole batch ([B*T, K]). */
  readonly routing: LayerRouting[];
  /** Batch rows of each item: [conditional] or [conditional, unconditional]. */
  readonly rows: number[][];
  /** Timings of this forward, ms. */
  readonly timings: { readonly denseMs: number; readonly expertMs: number; readonly totalMs: number };
  /**
   * Per item, what residual reuse did (undefined for items without it); absent when no item
   * asked. A reused item's routing is -1 (weight 0) in the layers it skipped.
   */
  readonly reuse?: readonly (ReuseOutcome | undefined)[];
}

export interface Engine {
  readonly parts: ModelParts;
  /** Evaluates the model for a batch of items; the batch is split at maxBatchRows. */
  forward(items: readonly EvalItem[]): Promise<ForwardResult>;
  /** Advances each sampler state by one eval (one model call), all in one batch. */
  step(tasks: readonly StepTask[]): Promise<StepResult[]>;
}

export interface StepTask {
  readonly state: SamplerState;
  readonly label: number;
  readonly guidance: number;
  /** Guidance only for evaluations at t in the interval (one conditional row elsewhere). */
  readonly guidanceInterval?: GuidanceInterval;
  /** Residual reuse for this evaluation. */
  readonly reuse?: ReuseRequest;
}

export interface StepResult {
  readonly state: SamplerState;
  readonly stepCompleted: boolean;
  /** The velocity that was applied (for previews). */
  readonly velocity: Float32Array;
  /** t at which the model was evaluated. */
  readonly t: number;
  /** Routing of this image's conditional row, per layer: experts [T*K] (-1 in layers a reused evaluation skipped). */
  readonly routing: Int16Array[];
  /** What residual reuse did, when the task asked for it. */
  readonly reuse?: ReuseOutcome;
}

export interface EngineOptions {
  readonly parts: ModelParts;
  readonly executor?: ExpertExecutor;
  /** Largest forward batch in rows; bigger batches are split. */
  readonly maxBatchRows?: number;
}

/** Bounded so that one forward's activations stay small (B*T*D floats per tensor). */
export const DEFAULT_MAX_BATCH_ROWS = 256;

class EngineImpl implements Engine {
  private readonly executor: ExpertExecutor;
  private readonly maxRows: number;

  constructor(
    readonly parts: ModelParts,
    executor: ExpertExecutor | undefined,
    maxRows: number,
  ) {
    this.executor = executor ?? createLocalExecutor(parts);
    this.maxRows = maxRows;
  }

  async forward(items: readonly EvalItem[]): Promise<ForwardResult> {
    const m = this.parts.manifest;
    const P = m.image.channels * m.image.height * m.image.width;
    const nullLabel = m.conditioning.nullLabel;
    const rows: number[][] = [];
    const rowItem: number[] = [];
    const xs: Float32Array[] = [];
    const ts: number[] = [];
    const ys: number[] = [];
    checkItems(items, m);
    for (const [i, it] of items.entries()) {
      const r = [xs.length];
      xs.push(it.x);
      ts.push(it.t);
      ys.push(it.label);
      if (needsUnconditional(it.guidance)) {
        r.push(xs.length);
        xs.push(it.x);
        ts.push(it.t);
        ys.push(nullLabel);
      }
      rows.push(r);
      for (const _ of r) rowItem.push(i);
    }
    const anyReuse = items.some((it) => it.reuse);
    const outcomes: (ReuseOutcome | undefined)[] = items.map(() => undefined);
    // Split into chunks of at most maxRows rows (keeping an item's rows together).
    const t0 = performance.now();
    const v = new Float32Array(xs.length * P);
    const routing: { experts: Int16Array[]; weights: Float32Array[] }[] = Array.from({ length: m.architecture.numLayers }, () => ({ experts: [], weights: [] }));
    let denseMs = 0;
    let expertMs = 0;
    for (let start = 0; start < xs.length; ) {
      // Chunks are independent: an item's rows are combined after all chunks ran.
      let end = Math.min(xs.length, start + this.maxRows);
      if (end < xs.length && rowItem[end] === rowItem[end - 1]) end--; // maxRows >= 2: never empty
      let chunkItems: ChunkItem[] | undefined;
      if (anyReuse) {
        chunkItems = [];
        for (let i = rowItem[start]!; i <= rowItem[end - 1]!; i++) chunkItems.push({ rows: rows[i]!.map((q) => q - start), ...(items[i]!.reuse ? { reuse: items[i]!.reuse } : {}) });
      }
      const r = await this.forwardRows(xs.slice(start, end), ts.slice(start, end), ys.slice(start, end), chunkItems);
      r.outcomes?.forEach((o, k) => (outcomes[rowItem[start]! + k] = o));
      v.set(r.v, start * P);
      r.routing.forEach((lr, l) => {
        routing[l]!.experts.push(lr.experts);
        routing[l]!.weights.push(lr.weights);
      });
      denseMs += r.denseMs;
      expertMs += r.expertMs;
      start = end;
    }
    const K = m.moe.topK;
    const T = m.architecture.tokens;
    const merged: LayerRouting[] = routing.map((lr) => ({
      rows: xs.length * T,
      topK: K,
      experts: concat(lr.experts, Int16Array),
      weights: concat(lr.weights, Float32Array),
    }));
    const velocities = items.map((it, i) => {
      const [c, u] = rows[i] as number[];
      const vc = v.subarray((c as number) * P, (c as number) * P + P);
      if (u === undefined) return vc.slice();
      return combineGuidance(vc, v.subarray(u * P, u * P + P), it.guidance);
    });
    return { velocities, routing: merged, rows, timings: { denseMs, expertMs, totalMs: performance.now() - t0 }, ...(anyReuse ? { reuse: outcomes } : {}) };
  }

  /**
   * One chunk of rows through the model. With `items` (the chunk's items, their rows
   * local to it, and any reuse setting), images whose first-block residual moved less
   * than their threshold skip the later blocks: only the other rows go on through the
   * dense parts, routing and experts (every layer's runLayer is still called, with no
   * rows if need be, so that expert holders hear from every home).
   */
  private async forwardRows(xs: Float32Array[], ts: number[], ys: number[], items?: readonly ChunkItem[]) {
    const m = this.parts.manifest;
    const B = xs.length;
    const T = m.architecture.tokens;
    const D = m.architecture.hiddenSize;
    const E = m.moe.numExperts;
    const K = m.moe.topK;
    const P = xs[0]!.length;
    const x = new Float32Array(B * P);
    xs.forEach((a, i) => x.set(a, i * P));
    let denseMs = 0;
    let expertMs = 0;
    let t0 = performance.now();
    const emb = await this.parts.embed(x, Float32Array.from(ts), BigInt64Array.from(ys, (y) => BigInt(y)));
    let h = emb.h;
    let c = emb.c;
    const routing: LayerRouting[] = [];
    const reusing = items?.some((it) => it.reuse) ?? false;
    /** Rows still computed (after the first block, without the reused images'); all of them otherwise. */
    let active: Int32Array | undefined;
    let first: Float32Array | undefined; // the first block's output, [B,T,D]
    let outcomes: (ReuseOutcome | undefined)[] | undefined;
    let b = B; // rows in h
    for (let l = 0; l < m.architecture.numLayers; l++) {
      if (l === 1 && reusing) {
        first = h;
        const decided = decideReuse(items!, emb.h, h, T * D, ts);
        outcomes = decided.outcomes;
        if (decided.active.length < B) {
          active = decided.active;
          b = active.length;
          h = gatherRows(first, T * D, active, 0, b);
          c = gatherRows(emb.c, emb.c.length / B, active, 0, b);
        }
      }
      if (b === 0) {
        // Every image reused: nothing to compute, but holders still wait for this home.
        const none: ExpertGroups = { numExperts: E, offsets: new Int32Array(E + 1), row: new Int32Array(0), weight: new Float32Array(0) };
        await this.executor.runLayer(l, new Float32Array(0), none, 0, async () => undefined);
        routing.push({ rows: 0, topK: K, experts: new Int16Array(0), weights: new Float32Array(0) });
        continue;
      }
      const d = await this.parts.dense(l, h, c, b);
      const r = routeTopK(d.logits, b * T, E, K);
      routing.push(r);
      const groups = groupByExpert(r, E);
      const t1 = performance.now();
      denseMs += t1 - t0;
      // The shared expert's output is the base the routed experts are mixed into; the
      // executor runs it while the routed experts are away.
      let sharedMs = 0;
      const init = async () => {
        if (!m.moe.sharedExpert) return undefined;
        const s = performance.now();
        const y = await this.parts.shared(l, d.u, b * T);
        sharedMs = performance.now() - s;
        return y;
      };
      const { base, outputs } = await this.executor.runLayer(l, d.u, groups, b * T, init);
      const t2 = performance.now();
      expertMs += t2 - t1 - sharedMs;
      denseMs += sharedMs;
      h = mixAndCombine(d.h1, d.gate, base, outputs, groups, b, T, D, K, d.h1); // in place: h1 is this call's own output
      t0 = performance.now();
      denseMs += t0 - t2;
    }
    if (reusing && first === undefined) {
      // A one-block model: the probe is all there is to compute.
      first = h;
      outcomes = decideReuse(items!, emb.h, h, T * D, ts).outcomes;
    }
    if (outcomes) {
      h = finishReuse(items!, outcomes, first!, h, active, T * D, ts);
      if (active) for (let l = 1; l < routing.length; l++) routing[l] = expandRouting(routing[l]!, active, B * T, T);
    }
    const v = await this.parts.final(h, emb.c, B);
    denseMs += performance.now() - t0;
    return { v, routing, denseMs, expertMs, ...(outcomes ? { outcomes } : {}) };
  }

  step(tasks: readonly StepTask[]): Promise<StepResult[]> {
    return stepWith(this, tasks);
  }
}

/** INVALID_ARGUMENT naming the first item whose image or label does not fit the model. */
export function checkItems(items: readonly EvalItem[], m: Manifest): void {
  const P = m.image.channels * m.image.height * m.image.width;
  const nullLabel = m.conditioning.nullLabel;
  for (const [i, it] of items.entries()) {
    if (it.x.length !== P) throw new SwitchyardError(`items[${i}].x has ${it.x.length} values, must have ${P}`, Code.InvalidArgument);
    if (!Number.isInteger(it.label) || it.label < 0 || it.label > nullLabel) {
      throw new SwitchyardError(`items[${i}].label ${it.label} must be an integer >= 0 and <= ${nullLabel}`, Code.InvalidArgument);
    }
  }
}

/** Engine.step over any engine's forward: one model call per task, each advanced by its velocity. */
export async function stepWith(engine: Pick<Engine, "parts" | "forward">, tasks: readonly StepTask[]): Promise<StepResult[]> {
  const evals = tasks.map((t) => nextEval(t.state));
  const res = await engine.forward(tasks.map((t, i) => ({ x: evals[i]!.x, t: evals[i]!.t, label: t.label, guidance: guidanceAt(t.guidance, evals[i]!.t, t.guidanceInterval), ...(t.reuse ? { reuse: t.reuse } : {}) })));
  const T = engine.parts.manifest.architecture.tokens;
  const K = engine.parts.manifest.moe.topK;
  return tasks.map((task, i) => {
    const a = advance(task.state, res.velocities[i]!);
    const row = res.rows[i]![0]!;
    return {
      state: a.state,
      stepCompleted: a.stepCompleted,
      velocity: res.velocities[i]!,
      t: evals[i]!.t,
      routing: res.routing.map((lr) => lr.experts.slice(row * T * K, (row + 1) * T * K)),
      ...(res.reuse?.[i] ? { reuse: res.reuse[i] } : {}),
    };
  });
}

/** An item of a chunk: its rows (local to the chunk) and its reuse setting. */
interface ChunkItem {
  readonly rows: readonly number[];
  readonly reuse?: ReuseRequest;
}

/**
 * After the first block: which images reuse (a state covering their rows, the probe
 * within the threshold of its forecast at the image's t, `ts` per row), and the rows
 * still computed, ascending. The probe (first block's output minus its input, float32) is
 * only made for the images that go on to a full evaluation (their new state, with the
 * old one's last evaluation as its previous); the others' distance is summed in place.
 */
function decideReuse(items: readonly ChunkItem[], input: Float32Array, first: Float32Array, rowSize: number, ts: readonly number[]): { outcomes: (ReuseOutcome | undefined)[]; active: Int32Array } {
  const skipped = new Set<number>();
  const outcomes = items.map((it): ReuseOutcome | undefined => {
    if (!it.reuse) return undefined;
    const s = it.reuse.state;
    const t = Math.fround(ts[it.rows[0]!]!); // as the model sees it (and the data plane carries it)
    const usable = stateFits(s, it.rows.length, rowSize);
    const distance = usable ? probeDistance(first, input, it.rows, s, forecastFactor(s, t), rowSize) : Number.NaN;
    if (usable && distance < it.reuse.threshold) {
      for (const r of it.rows) skipped.add(r);
      return { reused: true, distance, state: s };
    }
    // The residual is filled in once the later blocks have run (finishReuse).
    const probe = new Float32Array(it.rows.length * rowSize);
    it.rows.forEach((r, q) => {
      const a = r * rowSize;
      const b = q * rowSize;
      for (let i = 0; i < rowSize; i++) probe[b + i] = first[a + i]! - input[a + i]!;
    });
    const previous = usable ? { t: s.t, probe: s.probe, residual: s.residual } : undefined;
    return { reused: false, distance, state: { rows: it.rows.length, t, probe, residual: new Float32Array(0), ...(previous ? { previous } : {}) } };
  });
  const rows = items.reduce((n, it) => n + it.rows.length, 0);
  const active = Int32Array.from({ length: rows }, (_, r) => r).filter((r) => !skipped.has(r));
  return { outcomes, active };
}

/**
 * The last block's output of every row, in `first` (the first block's output, which this
 * overwrites) unless every row was computed (then `computed` is it): computed rows as
 * computed (a full evaluation's new residual is their output minus the first block's),
 * reused rows the first block's output plus the state's residual forecast at the image's
 * t (`ts` per row). `active`: the rows of `computed`, when not all.
 */
function finishReuse(items: readonly ChunkItem[], outcomes: (ReuseOutcome | undefined)[], first: Float32Array, computed: Float32Array, active: Int32Array | undefined, rowSize: number, ts: readonly number[]): Float32Array {
  const at = new Int32Array(items.reduce((n, it) => n + it.rows.length, 0)).fill(-1); // row → its row in `computed`
  if (active) active.forEach((r, k) => (at[r] = k));
  else at.forEach((_, r) => (at[r] = r));
  items.forEach((it, k) => {
    const o = outcomes[k];
    if (o?.reused) {
      addForecastResidual(first, it.rows, o.state, forecastFactor(o.state, Math.fround(ts[it.rows[0]!]!)), rowSize);
      return;
    }
    const residual = o ? new Float32Array(it.rows.length * rowSize) : undefined;
    it.rows.forEach((r, q) => {
      const a = r * rowSize;
      const c = at[r]! * rowSize;
      if (residual) for (let i = 0, b = q * rowSize; i < rowSize; i++) residual[b + i] = computed[c + i]! - first[a + i]!;
      if (active) first.set(computed.subarray(c, c + rowSize), a);
    });
    if (o && residual) outcomes[k] = { ...o, state: { ...o.state, residual } };
  });
  return active ? first : computed;
}

/** A layer's routing over the computed rows spread back over all rows: -1 (weight 0) where a row skipped it. */
function expandRouting(lr: LayerRouting, active: Int32Array, allTokens: number, T: number): LayerRouting {
  const K = lr.topK;
  const experts = new Int16Array(allTokens * K).fill(-1);
  const weights = new Float32Array(allTokens * K);
  active.forEach((r, k) => {
    experts.set(lr.experts.subarray(k * T * K, (k + 1) * T * K), r * T * K);
    weights.set(lr.weights.subarray(k * T * K, (k + 1) * T * K), r * T * K);
  });
  return { rows: allTokens, topK: K, experts, weights };
}

/** The arrays laid end to end (the one array itself when there is one). */
export function concat<A extends Int16Array | Float32Array>(arrays: A[], Ctor: { new (n: number): A }): A {
  if (arrays.length === 1) return arrays[0] as A;
  const out = new Ctor(arrays.reduce((s, a) => s + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    (out as Float32Array).set(a as unknown as Float32Array, o);
    o += a.length;
  }
  return out;
}

export function createEngine(options: EngineOptions): Engine {
  const maxRows = options.maxBatchRows ?? DEFAULT_MAX_BATCH_ROWS;
  if (!Number.isInteger(maxRows) || maxRows < 2) {
    throw new SwitchyardError(`maxBatchRows ${maxRows} must be an integer >= 2`, Code.InvalidArgument, { field: "maxBatchRows" });
  }
  return new EngineImpl(options.parts, options.executor, maxRows);
}
