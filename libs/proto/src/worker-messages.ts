/**
 * Data-plane messages (proto/switchyard/v1/worker.proto) as TypeScript values over
 * typed arrays. The gRPC layer maps them to raw bytes without copying where it can.
 */
export interface TickItemMsg {
  readonly requestId: string;
  readonly imageIndex: number;
  /** [C*H*W] */
  readonly x: Float32Array;
  readonly t: number;
  readonly label: number;
  readonly guidance: number;
  /** Residual reuse for this evaluation; absent: a full evaluation. */
  readonly reuse?: TickReuseMsg;
}

/** One full evaluation of an image, per model row ([rows, tokens, hidden] each). */
export interface ReuseSnapshotMsg {
  /** The evaluation's t (float32 on the wire, as the model saw it). */
  readonly t: number;
  /** The first block's residual. */
  readonly probe: Float32Array;
  /** The later blocks' residual. */
  readonly residual: Float32Array;
}

/** What an image's last full evaluation left, and the one before it (the forecast follows the line through them). */
export interface ReuseStateMsg extends ReuseSnapshotMsg {
  readonly rows: number;
  /** Absent after the image's first full evaluation. */
  readonly previous?: ReuseSnapshotMsg;
}

/** Bytes a residual-reuse state holds, its previous evaluation's included. */
export function reuseStateBytes(s: ReuseStateMsg): number {
  return s.probe.byteLength + s.residual.byteLength + (s.previous ? s.previous.probe.byteLength + s.previous.residual.byteLength : 0);
}

/** The state's last evaluation alone. */
export function snapshotOf(s: ReuseSnapshotMsg): ReuseSnapshotMsg {
  return { t: s.t, probe: s.probe, residual: s.residual };
}

/** The state without its previous evaluation (the same arrays). */
export function withoutPrevious(s: ReuseStateMsg): ReuseStateMsg {
  return { rows: s.rows, ...snapshotOf(s) };
}

/** The key TickRequest.reuse_release names an image's state by: `requestId/imageIndex`. */
export const reuseKey = (requestId: string, imageIndex: number): string => `${requestId}/${imageIndex}`;

/** A view into a larger buffer is copied, so that a kept value does not keep a whole decoded message alive. */
const owned = (a: Float32Array): Float32Array => (a.byteOffset === 0 && a.buffer.byteLength === a.byteLength ? a : a.slice());

/** The state with tensors of its own (those that were views into a decoded message copied out). */
export function ownedReuseState(s: ReuseStateMsg): ReuseStateMsg {
  const p = s.previous;
  return { rows: s.rows, t: s.t, probe: owned(s.probe), residual: owned(s.residual), ...(p ? { previous: { t: p.t, probe: owned(p.probe), residual: owned(p.residual) } } : {}) };
}

export interface TickReuseMsg {
  /** Reuse when the first block's residual is within this (relative L1) of its forecast, > 0. */
  readonly threshold: number;
  /**
   * Instead of `state`: the state this worker returned for this image in that tick (a
   * worker keeps the states it makes); one it no longer holds defers the item.
   */
  readonly stateTick?: number;
  /** The state from the image's last full evaluation; absent: full. */
  readonly state?: ReuseStateMsg;
}

/** What residual reuse did for item `item` of the tick. */
export interface ReuseResultMsg {
  readonly item: number;
  readonly reused: boolean;
  /** The probe's relative L1 distance from its forecast; NaN without a usable state. */
  readonly distance: number;
  /** The new state after a full evaluation; absent when reused (the state is unchanged). */
  readonly state?: ReuseStateMsg;
  /** The new state's previous evaluation is the state the item was sent (left out of `state` on the wire). */
  readonly previousIsInput?: boolean;
}

export interface TickRequestMsg {
  readonly tick: number;
  readonly items: readonly TickItemMsg[];
  /** Workers with images in this tick: the senders every expert owner waits for. */
  readonly homes: readonly string[];
  readonly planVersion: number;
  /** Owner worker id per global expert id (layer * E + e). */
  readonly owners: readonly string[];
  /** Micro-batches per home (their exchanges overlap each other's dense parts); absent or 1: one. */
  readonly microBatches?: number;
  /** Redundant copies per global expert (workers besides the owner); absent: none. */
  readonly replicas?: readonly (readonly string[])[];
  /** [layers*E] images of the tick predicted to route to each global expert; absent: no prediction. */
  readonly predicted?: Int32Array;
  /** `requestId/imageIndex` of kept residual-reuse states the scheduler will not refer to again. */
  readonly reuseRelease?: readonly string[];
}

export interface TickResponseMsg {
  /** [items, C*H*W], guidance combined */
  readonly velocities: Float32Array;
  /** [items, layers, tokens, topK] experts of each item's conditional row */
  readonly routing: Int16Array;
  /** [items, layers, tokens, topK] routing weights of those experts */
  readonly routingWeights: Float32Array;
  /** [items, ceil(layers*E/8)] bitmask of the global experts any row of each item used (both CFG branches). */
  readonly expertsUsed?: Uint8Array;
  /** Items that asked for residual reuse; a reused item's routing is -1 (weight 0) in the layers it skipped. */
  readonly reuse?: readonly ReuseResultMsg[];
  /** Items not evaluated (their `stateTick` state is not held): zero velocity and routing; sent again with the state. */
  readonly deferred?: readonly number[];
  readonly denseMs: number;
  readonly expertMs: number;
}

export interface ExchangeRequestMsg {
  readonly tick: number;
  readonly layer: number;
  readonly from: string;
  readonly homes: readonly string[];
  readonly rows: number;
  /**
   * [rows, D] unique rows: contiguous, or as rows of the sender's matrix that the codec
   * gathers while it serializes (a home never copies them into a buffer of their own).
   */
  readonly u: Float32Array | GatheredRows;
  /** [n] index into rows */
  readonly assignRow: Int32Array;
  /** [n] expert id within the layer */
  readonly assignExpert: Int32Array;
  /** Micro-batch of the sender's images, and how many each home runs (absent: 0 of 1). */
  readonly micro?: number;
  readonly micros?: number;
}

export interface ExchangeResponseMsg {
  /**
   * [n, D] expert output of every assignment, unweighted, in request order, as
   * consecutive chunks (an owner answers with views on its experts' outputs instead of
   * copying them into one buffer; off the wire it is one chunk).
   */
  readonly y: readonly Float32Array[];
}

/** Row j is row `index[j]` of `src` ([*, dim]). */
export interface GatheredRows {
  readonly src: Float32Array;
  readonly index: Int32Array;
  readonly dim: number;
}

/** The source matrix and row of row j of `u`. */
export function rowSource(u: Float32Array | GatheredRows): { readonly src: Float32Array; readonly index: Int32Array | undefined } {
  return u instanceof Float32Array ? { src: u, index: undefined } : { src: u.src, index: u.index };
}

/** How a home reaches the other workers. gRPC in deployments; direct calls in memory. */
export interface PeerClient {
  exchange(peer: string, req: ExchangeRequestMsg): Promise<ExchangeResponseMsg>;
}

/**
 * Expert-cache counters of a worker under a device budget, as its heartbeats carry them
 * (totals since start; budgetBytes and resident* are gauges). Types, not interfaces, so
 * that they are assignable to the bus's Json.
 */
export type CacheFigures = {
  readonly policy: string;
  readonly budgetBytes: number;
  readonly residentBytes: number;
  readonly residentExperts: number;
  readonly ticks: number;
  readonly layerRuns: number;
  /** Sum over layer runs of the distinct experts each needed. */
  readonly needed: number;
  readonly hits: number;
  readonly misses: number;
  readonly loads: number;
  readonly bytesLoaded: number;
  readonly prefetchLoads: number;
  /** Bytes loaded in a tick for experts that tick did not use. */
  readonly wastedBytes: number;
  /** Wall time layer runs waited beyond device compute (loads and hand-off). */
  readonly stallMs: number;
  /** Of which loading on demand (misses). */
  readonly demandLoadMs: number;
  readonly predicted: number;
  readonly predictedHits: number;
};

/** A worker's traffic totals (and cache counters), as heartbeats and /metrics carry them. */
export type WorkerTraffic = {
  readonly ticks: number;
  readonly rowsSent: number;
  readonly rowsReceived: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly expertRows: number;
  readonly cache?: CacheFigures;
};
