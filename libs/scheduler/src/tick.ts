import { type WorkerPool, copiesOf, encodePrediction, expertsUsedBy, f32ToBase64 } from "@switchyard/contract";
import type { ClassPriors } from "@switchyard/expert-cache";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type ReuseStateMsg, type TickItemMsg, type TickRequestMsg, type TickResponseMsg, ownedReuseState, reuseKey, snapshotOf, withoutPrevious } from "@switchyard/proto";
import { currentT, guidanceAt, nextEval, previewX0 } from "@switchyard/sampler";
import { type RequestState, type TickItem, applyReuse, applyVelocity, forgetReuseAt, isFinished, reuseStateBytes } from "./policy";
import type { Live } from "./request";
import type { RoutingRecord } from "./service";

/**
 * One tick, in the three stages policy.ts promises: decide (`buildTick`: what every
 * worker is sent, from the requests' sampler state; changes nothing), apply (`runTick`:
 * the calls over the pool; the first failure wins), update (`updateRequests`: the
 * results folded into each request's state, with what the scheduler must then publish).
 */

/** What every RunTick of a tick shares: its homes, the plan in force, and the micro-batches per home. */
export type TickFrame = Omit<TickRequestMsg, "items">;

export interface TickCall {
  readonly home: string;
  /** The tick's items homed on this worker (none for an owner that only hears the prediction). */
  readonly items: readonly TickItem[];
  readonly req: TickRequestMsg;
}

export interface BuiltTick {
  readonly calls: readonly TickCall[];
  /** The eval point (x, t) each item was sent, by `requestId/imageIndex`. */
  readonly evals: ReadonlyMap<string, { readonly x: Float32Array; readonly t: number }>;
}

/** Items grouped by home; homes sorted. */
export function itemsByHome(items: readonly TickItem[]): Map<string, TickItem[]> {
  const byHome = new Map<string, TickItem[]>();
  for (const it of items) {
    const mine = byHome.get(it.home);
    if (mine) mine.push(it);
    else byHome.set(it.home, [it]);
  }
  return new Map([...byHome].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Decide: every target's RunTick. Every worker hears of the tick (owners without images
 * too) when there is a prediction: the experts it will need let each prefetch ahead of
 * compute. `frameFor(targets)`: the shared part, given who is called.
 */
export function buildTick(
  byHome: ReadonlyMap<string, readonly TickItem[]>,
  stateOf: (requestId: string) => RequestState,
  predictedOf: (requestId: string) => ReadonlySet<number> | undefined,
  members: readonly string[],
  experts: number,
  frameFor: (targets: readonly string[]) => TickFrame,
  releaseOf?: (worker: string) => readonly string[] | undefined,
): BuiltTick {
  const homeIds = [...byHome.keys()];
  const items = [...byHome.values()].flat();
  const predicted = encodePrediction(items.map((it) => predictedOf(it.requestId)), experts);
  const targets = predicted ? [...new Set([...homeIds, ...members])].sort() : homeIds;
  const frame = frameFor(targets);
  const evals = new Map<string, { x: Float32Array; t: number }>();
  const calls = targets.map((home): TickCall => {
    const mine = byHome.get(home) ?? [];
    const msgs = mine.map((it): TickItemMsg => {
      const s = stateOf(it.requestId);
      const e = nextEval(s.images[it.imageIndex]!.sampler);
      evals.set(`${it.requestId}/${it.imageIndex}`, e);
      const img = s.images[it.imageIndex]!;
      // A state the home made itself is named by its tick; elsewhere (re-homed, or never kept there) it travels.
      const held = img.reuse ? (img.reuseAt?.worker === home ? { stateTick: img.reuseAt.tick } : { state: img.reuse }) : {};
      const reuse = s.spec.reuseThreshold ? { reuse: { threshold: s.spec.reuseThreshold, ...held } } : {};
      return { requestId: it.requestId, imageIndex: it.imageIndex, x: e.x, t: e.t, label: s.spec.label, guidance: guidanceAt(s.spec.guidance, e.t, s.spec.guidanceInterval), ...reuse };
    });
    const release = releaseOf?.(home);
    return { home, items: mine, req: { ...frame, ...(predicted ? { predicted } : {}), ...(release && release.length > 0 ? { reuseRelease: release } : {}), items: msgs } };
  });
  return { calls, evals };
}

/**
 * The releases a failed tick's calls carried to workers still in the pool, to send again
 * with a later tick. Safe to repeat: a worker releases before it evaluates, a key it no
 * longer holds is a no-op, and the scheduler names kept states by their tick.
 */
export function carriedReleases(calls: readonly TickCall[], members: readonly string[]): ReadonlyMap<string, readonly string[]> {
  return new Map(calls.filter((c) => c.req.reuseRelease?.length && members.includes(c.home)).map((c) => [c.home, c.req.reuseRelease!]));
}

export type TickOutcome =
  | { readonly ok: true; readonly results: readonly { readonly call: TickCall; readonly res: TickResponseMsg }[] }
  | { readonly ok: false; readonly failedHomes: readonly string[]; readonly reason: SwitchyardError };

/**
 * Apply: the calls over the pool. Returns as soon as one fails: when a home dies the
 * others block on its rows until their exchange timeout, and nothing of a failed tick is
 * applied anyway (abandoned calls fail in the workers on their own).
 */
export async function runTick(pool: WorkerPool, calls: readonly TickCall[]): Promise<TickOutcome> {
  const settled = await settleOrFirstFailure(
    calls.map(async (call) => {
      try {
        return { call, res: await pool.runTick(call.home, call.req) };
      } catch (e) {
        throw Object.assign(SwitchyardError.from(e, Code.Unavailable), { home: call.home });
      }
    }),
  );
  const failures = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failures.length > 0) {
    const failedHomes = [...new Set(failures.map((f) => (f.reason as { home?: string }).home).filter((h): h is string => !!h))];
    return { ok: false, failedHomes, reason: SwitchyardError.from(failures[0]!.reason) };
  }
  return { ok: true, results: settled.map((s) => (s as PromiseFulfilledResult<{ call: TickCall; res: TickResponseMsg }>).value) };
}

/** What a tick's results mean for the scheduler to publish. */
export interface TickUpdate {
  /** Image evals applied and sampler steps completed (per request). */
  readonly evals: number;
  readonly steps: number;
  /** Progress events of requests that completed a step, in order. */
  readonly progress: readonly { readonly requestId: string; readonly step: number; readonly steps: number; readonly t: number; readonly previews?: string[] }[];
  /** Requests whose last step completed (in order). */
  readonly finished: readonly string[];
  /** Residual reuse: evaluations that reused, that ran full, and new states dropped over the bound. */
  readonly reuse: { readonly reused: number; readonly full: number; readonly dropped: number };
  /** Items a worker deferred (it no longer held the state their tick named): sent again, with the state. */
  readonly deferred: number;
  /** Per worker, the `requestId/imageIndex` of states it kept that will not be named again (TickRequest.reuse_release). */
  readonly release: ReadonlyMap<string, readonly string[]>;
}

export interface UpdateContext {
  readonly layers: number;
  readonly experts: number;
  /** tokens × topK */
  readonly tokensTopK: number;
  /** Floats per image. */
  readonly imageSize: number;
  /** The plan the tick ran under. */
  readonly owners: readonly string[];
  readonly replicas: readonly (readonly string[])[] | undefined;
  /** The tick's wall time, and how many items shared it. */
  readonly tickMs: number;
  readonly tickItems: number;
  readonly priors: ClassPriors;
  /** Residual-reuse state bytes held before this update (every live request's), and the bound. */
  readonly reuseBytes?: number;
  readonly maxReuseBytes?: number;
  /** Hears each applied eval's routing, in item order (the trace recorder); no record is built without it. Reused evaluations are not recorded (they skipped most layers). */
  readonly onRouting?: (r: RoutingRecord) => void;
}

/**
 * Update: folds each result into its request (velocity → sampler state, compute time,
 * the experts it used as the prediction for its next eval and the workers that served
 * them as its affinity, the class prior from a first eval, its preview), and says what
 * to publish. Requests cancelled meanwhile (gone from `requests`) are skipped.
 */
export function updateRequests(requests: ReadonlyMap<string, Live>, results: Extract<TickOutcome, { ok: true }>["results"], evals: BuiltTick["evals"], c: UpdateContext): TickUpdate {
  const L = c.layers;
  const E = c.experts;
  const TK = c.tokensTopK;
  const P = c.imageSize;
  const touched = new Set<string>();
  const progress: { requestId: string; step: number; steps: number; t: number; previews?: string[] }[] = [];
  const finished: string[] = [];
  let evalCount = 0;
  let steps = 0;
  const reuse = { reused: 0, full: 0, dropped: 0 };
  let deferred = 0;
  const release = new Map<string, string[]>();
  const releaseAt = (worker: string, key: string) => (release.get(worker) ?? release.set(worker, []).get(worker)!).push(key);
  let reuseBytes = c.reuseBytes ?? 0;
  for (const { call, res } of results) {
    const reuseOf = new Map((res.reuse ?? []).map((o) => [o.item, o]));
    const deferredItems = new Set(res.deferred ?? []);
    call.items.forEach((it, j) => {
      const r = requests.get(it.requestId);
      if (!r) return; // cancelled meanwhile
      if (deferredItems.has(j)) {
        // Not evaluated: its state goes with its next evaluation.
        r.state = forgetReuseAt(r.state, it.imageIndex);
        deferred++;
        return;
      }
      const o = reuseOf.get(j);
      const key = reuseKey(it.requestId, it.imageIndex);
      if (o?.reused) {
        r.state = applyReuse(r.state, it.imageIndex, true, undefined, true);
        reuse.reused++;
      } else if (o) {
        // A full evaluation's new state replaces the old one, within the bound; where it
        // does not fit, the state without its previous evaluation (half the bytes: the
        // forecast falls back to the last evaluation's values) may. Its previous
        // evaluation, when that is the state the item was sent, stays off the wire.
        const img = r.state.images[it.imageIndex]!;
        const freed = reuseStateBytes(img.reuse);
        const fits = (s: ReuseStateMsg | undefined) => reuseBytes - freed + reuseStateBytes(s) <= (c.maxReuseBytes ?? Number.POSITIVE_INFINITY);
        let next = o.state && ownedReuseState(o.state);
        if (next && o.previousIsInput && !next.previous && img.reuse) next = { ...next, previous: snapshotOf(img.reuse) };
        if (next?.previous && !fits(next)) next = withoutPrevious(next);
        const keep = fits(next);
        r.state = applyReuse(r.state, it.imageIndex, false, next, keep, { worker: call.home, tick: call.req.tick });
        reuseBytes += (keep ? reuseStateBytes(next) : 0) - freed;
        reuse.full++;
        if (!keep && next) reuse.dropped++;
        // What workers kept that will not be named again: the old state where it was made
        // elsewhere, and the new one when it was not kept here.
        if (img.reuseAt && img.reuseAt.worker !== call.home) releaseAt(img.reuseAt.worker, key);
        if (!keep && next) releaseAt(call.home, key);
      }
      const v = res.velocities.subarray(j * P, (j + 1) * P);
      const ev = evals.get(key)!;
      const before = r.state.images[it.imageIndex]!.sampler.step;
      const a = applyVelocity(r.state, it.imageIndex, v);
      r.state = a.state;
      evalCount++;
      if (a.stepCompleted) steps++;
      r.computeMs += c.tickMs / Math.max(1, c.tickItems);
      // affinity: which worker served each of this image's assignments
      const firstEval = r.predicted === undefined;
      const previous = r.predicted;
      if (!touched.has(it.requestId)) {
        touched.add(it.requestId);
        r.tickMs += c.tickMs;
        r.affinity = new Map();
        r.predicted = new Set();
      }
      const affinity = r.affinity!;
      const predicted = r.predicted!;
      const routed = res.routing.subarray(j * L * TK, (j + 1) * L * TK);
      // A reused evaluation ran only the first block: for the later layers its last full
      // evaluation's experts stay the prediction (the next may be full).
      if (o?.reused && previous) for (const g of previous) if (g >= E) predicted.add(g);
      for (let l = 0; l < L; l++)
        for (let q = 0; q < TK; q++) {
          if (routed[l * TK + q]! < 0) continue; // a layer the evaluation skipped
          const g = l * E + routed[l * TK + q]!;
          predicted.add(g);
          if (c.owners[g] !== undefined) for (const w of copiesOf({ owners: c.owners, replicas: c.replicas }, g)) affinity.set(w, (affinity.get(w) ?? 0) + 1);
        }
      // Both CFG branches' experts when the worker reports them (the unconditional row routes differently).
      for (const g of expertsUsedBy(res.expertsUsed, L * E, j) ?? []) predicted.add(g);
      if (firstEval) c.priors.observe(r.state.spec.label, predicted);
      if (!o?.reused) c.onRouting?.({ requestId: it.requestId, step: before, label: r.state.spec.label, t: ev.t, experts: routed, weights: res.routingWeights.subarray(j * L * TK, (j + 1) * L * TK) });
      const interval = r.msg.previewInterval;
      if (interval > 0) r.preview[it.imageIndex] = previewX0(ev.x, ev.t, v);
      if (a.stepCompleted) {
        const step = r.state.step;
        const total = r.state.spec.params.steps;
        const previews = interval > 0 && (step % interval === 0 || step === total) ? r.preview.map((x, i) => f32ToBase64(x ?? r.state.images[i]!.sampler.x)) : undefined;
        progress.push({ requestId: it.requestId, step, steps: total, t: currentT(r.state.images[0]!.sampler), ...(previews ? { previews } : {}) });
      }
      if (isFinished(r.state)) finished.push(it.requestId);
    });
  }
  return { evals: evalCount, steps, progress, finished, reuse, deferred, release };
}

/** Like Promise.allSettled, but resolves as soon as one promise rejects (with what has settled by then). */
function settleOrFirstFailure<T>(ps: Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
  return new Promise((resolve) => {
    const out: PromiseSettledResult<T>[] = new Array(ps.length);
    let left = ps.length;
    let done = false;
    if (left === 0) resolve(out);
    ps.forEach((p, i) =>
      p.then(
        (value) => {
          out[i] = { status: "fulfilled", value };
          if (--left === 0 && !done) resolve(out);
        },
        (reason: unknown) => {
          out[i] = { status: "rejected", reason };
          if (!done) {
            done = true;
            resolve(out.filter((x) => x !== undefined));
          }
        },
      ),
    );
  });
}
