import { readFileSync } from "node:fs";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type SafeTensors, encodeSafeTensors, floatToHalf, parseSafeTensors, tensor, toFloat32 } from "@switchyard/tensor";

/**
 * A routing trace in memory. A *record* is one image pass (or, for LLM traces, one
 * token) at one sampler eval; `experts` is [records, layers, tokens, topK].
 */
export interface Trace {
  readonly layers: number;
  readonly experts: number;
  readonly topK: number;
  /** Tokens per record (49 for the reference model; 1 for LLM token traces). */
  readonly tokens: number;
  readonly records: number;
  /** [records] trace-local request id */
  readonly request: Int32Array;
  readonly step: Int32Array;
  readonly branch: Uint8Array;
  readonly label: Int32Array;
  readonly t: Float32Array;
  /** [records, layers, tokens, topK] */
  readonly routing: Int16Array;
  /** [records, layers, tokens, topK], or undefined when the source has no weights */
  readonly weights: Float32Array | undefined;
}

function bad(source: string, why: string): SwitchyardError {
  return new SwitchyardError(`${source}: ${why}`, Code.InvalidArgument);
}

/** Reads the runtime's own format (`switchyard-trace` v1, see models/README.md). */
export function parseTrace(st: SafeTensors, source = "trace"): Trace {
  const md = st.metadata;
  if (md.format !== TRACE_FORMAT) throw bad(source, `format ${JSON.stringify(md.format)} must be "${TRACE_FORMAT}"`);
  if (md.version !== "1") throw bad(source, `version ${JSON.stringify(md.version)} must be "1"`);
  const ex = st.get("experts");
  if (ex.shape.length !== 4) throw bad(source, `experts has shape [${ex.shape.join(", ")}], must be [records, layers, tokens, top_k]`);
  const [records, layers, tokens, topK] = ex.shape as [number, number, number, number];
  const experts = Number(md.experts);
  if (!Number.isInteger(experts) || experts < 1) throw bad(source, `metadata experts ${JSON.stringify(md.experts)} must be a positive integer`);
  const routing = ex.dtype === "uint8" ? Int16Array.from(ex.data as Uint8Array) : ex.dtype === "int16" ? (ex.data as Int16Array) : undefined;
  if (!routing) throw bad(source, `experts dtype ${ex.dtype} must be uint8 or int16`);
  for (let i = 0; i < routing.length; i++) {
    const e = routing[i]!;
    if (e < 0 || e >= experts) throw bad(source, `experts[${i}] = ${e} is outside 0..${experts - 1}`);
  }
  const col = <T>(name: string, f: (s: SafeTensors) => T) => {
    const tt = st.tensors.get(name);
    if (!tt || tt.shape[0] !== records) throw bad(source, `${name} must have ${records} entries`);
    return f(st);
  };
  return {
    layers, experts, topK, tokens, records,
    request: col("request", (s) => s.get("request").data as Int32Array),
    step: col("step", (s) => s.get("step").data as Int32Array),
    branch: col("branch", (s) => s.get("branch").data as Uint8Array),
    label: col("label", (s) => s.get("label").data as Int32Array),
    t: col("t", (s) => s.get("t").data as Float32Array),
    routing,
    weights: st.tensors.has("weights") ? toFloat32(st.get("weights")) : undefined,
  };
}

export function readTrace(path: string): Trace {
  return parseTrace(parseSafeTensors(readFileSync(path), path), path);
}

/**
 * Reads the `[tokens, layers, top_k]` int16 `.npy` layout LLM engines emit: each token
 * becomes a record of one token (request = token index, step 0).
 */
export function parseNpyTrace(bytes: Uint8Array, experts: number, source = "trace.npy"): Trace {
  if (bytes.length < 10 || bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== "NUMPY") throw bad(source, "not a .npy file");
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1]?.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (descr !== "<i2") throw bad(source, `dtype ${JSON.stringify(descr)} must be "<i2" (int16, little-endian)`);
  if (fortran !== "False") throw bad(source, "fortran_order must be False");
  if (!shape || shape.length !== 3) throw bad(source, `shape (${shape?.join(", ")}) must be (tokens, layers, top_k)`);
  const [n, layers, topK] = shape as [number, number, number];
  const data = bytes.subarray(hstart + hlen);
  if (data.byteLength < n * layers * topK * 2) throw bad(source, "data is shorter than the shape says");
  const routing = new Int16Array(n * layers * topK);
  for (let i = 0; i < routing.length; i++) {
    const e = dv.getInt16(hstart + hlen + 2 * i, true);
    if (e < 0 || e >= experts) throw bad(source, `entry ${i} = ${e} is outside 0..${experts - 1}`);
    routing[i] = e;
  }
  return {
    layers, experts, topK, tokens: 1, records: n,
    request: Int32Array.from({ length: n }, (_, i) => i), step: new Int32Array(n), branch: new Uint8Array(n),
    label: new Int32Array(n).fill(-1), t: new Float32Array(n), routing, weights: undefined,
  };
}

/**
 * Concatenates traces of one model (recorder files, traces of several runs). Request ids
 * are renumbered so that each file's requests stay distinct.
 */
export function mergeTraces(traces: readonly Trace[]): Trace {
  const first = traces[0];
  if (!first) throw new SwitchyardError("no traces to merge", Code.InvalidArgument, { field: "traces" });
  for (const [i, t] of traces.entries()) {
    for (const k of ["layers", "experts", "topK", "tokens"] as const) {
      if (t[k] !== first[k]) throw new SwitchyardError(`traces[${i}] has ${k} ${t[k]}, traces[0] has ${first[k]}: they are from different models`, Code.InvalidArgument, { field: `traces[${i}]` });
    }
  }
  const records = traces.reduce((s, t) => s + t.records, 0);
  const per = first.layers * first.tokens * first.topK;
  const request = new Int32Array(records);
  const step = new Int32Array(records);
  const branch = new Uint8Array(records);
  const label = new Int32Array(records);
  const tt = new Float32Array(records);
  const routing = new Int16Array(records * per);
  const withWeights = traces.every((t) => t.weights);
  const weights = withWeights ? new Float32Array(records * per) : undefined;
  let at = 0;
  let base = 0;
  for (const t of traces) {
    let maxReq = -1;
    for (let i = 0; i < t.records; i++) {
      request[at + i] = base + t.request[i]!;
      maxReq = Math.max(maxReq, t.request[i]!);
    }
    step.set(t.step, at);
    branch.set(t.branch, at);
    label.set(t.label, at);
    tt.set(t.t, at);
    routing.set(t.routing, at * per);
    if (weights) weights.set(t.weights!, at * per);
    at += t.records;
    base += maxReq + 1;
  }
  return { layers: first.layers, experts: first.experts, topK: first.topK, tokens: first.tokens, records, request, step, branch, label, t: tt, routing, weights };
}

export const TRACE_FORMAT = "switchyard-trace";

export interface EncodeTraceOptions {
  /** Written as the file's `source` (who recorded it). */
  readonly source?: string;
  /** Routing weights as float16 (the recorder: half the bytes; what routing analysis needs) or float32 (default: exact). */
  readonly weights?: "float16" | "float32";
}

/**
 * The one writer of the runtime's own format (`switchyard-trace` v1, models/README.md):
 * the scheduler's recorder (float16 weights) and `switchyard placement trace export`
 * (float32) both call it.
 */
export function encodeTrace(t: Trace, model: string, options: EncodeTraceOptions = {}): Uint8Array {
  const shape = [t.records, t.layers, t.tokens, t.topK];
  const ex = t.experts <= 256 ? tensor("uint8", shape, Uint8Array.from(t.routing)) : tensor("int16", shape, t.routing);
  const w = t.weights;
  let weights: Record<string, ReturnType<typeof tensor>> = {};
  if (w && options.weights === "float16") {
    const half = new Uint16Array(w.length);
    for (let i = 0; i < w.length; i++) half[i] = floatToHalf(w[i]!);
    weights = { weights: tensor("float16", shape, half) };
  } else if (w) weights = { weights: tensor("float32", shape, w) };
  return encodeSafeTensors(
    {
      request: tensor("int32", [t.records], t.request),
      step: tensor("int32", [t.records], t.step),
      branch: tensor("uint8", [t.records], t.branch),
      label: tensor("int32", [t.records], t.label),
      t: tensor("float32", [t.records], t.t),
      experts: ex,
      ...weights,
    },
    {
      format: TRACE_FORMAT, version: "1", model, layers: String(t.layers), experts: String(t.experts), top_k: String(t.topK), tokens: String(t.tokens),
      source: options.source ?? "switchyard trace export",
    },
  );
}

/** A trace's dimensions. */
export type TraceShape = Pick<Trace, "layers" | "experts" | "topK" | "tokens">;

/** One record as a recorder sees it: a request's image eval (conditional pass) with its routing. */
export interface TraceRecord {
  readonly requestId: string;
  readonly step: number;
  readonly label: number;
  readonly t: number;
  /** [layers, tokens, topK] */
  readonly experts: ArrayLike<number>;
  /** [layers, tokens, topK] */
  readonly weights: ArrayLike<number>;
}

/** A trace from records (request ids numbered in order of first appearance, `ids` carried across calls). */
export function buildTrace(shape: TraceShape, records: readonly TraceRecord[], ids: Map<string, number> = new Map()): Trace {
  const per = shape.layers * shape.tokens * shape.topK;
  const n = records.length;
  const routing = new Int16Array(n * per);
  const weights = new Float32Array(n * per);
  records.forEach((r, i) => {
    if (!ids.has(r.requestId)) ids.set(r.requestId, ids.size);
    routing.set(r.experts, i * per);
    weights.set(r.weights, i * per);
  });
  return {
    ...shape, records: n,
    request: Int32Array.from(records, (r) => ids.get(r.requestId)!),
    step: Int32Array.from(records, (r) => r.step),
    branch: new Uint8Array(n),
    label: Int32Array.from(records, (r) => r.label),
    t: Float32Array.from(records, (r) => r.t),
    routing, weights,
  };
}

/** The `[tokens, layers, top_k]` int16 `.npy` layout of LLM engines: one row per token of every record. */
export function encodeNpyTrace(t: Trace): Uint8Array {
  const n = t.records * t.tokens;
  let header = `{'descr': '<i2', 'fortran_order': False, 'shape': (${n}, ${t.layers}, ${t.topK}), }`;
  // magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(pad % 64) + "\n";
  const out = new Uint8Array(10 + header.length + n * t.layers * t.topK * 2);
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0]);
  const dv = new DataView(out.buffer);
  dv.setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  let o = 10 + header.length;
  for (let r = 0; r < t.records; r++)
    for (let tok = 0; tok < t.tokens; tok++)
      for (let l = 0; l < t.layers; l++)
        for (let k = 0; k < t.topK; k++) {
          dv.setInt16(o, t.routing[((r * t.layers + l) * t.tokens + tok) * t.topK + k]!, true);
          o += 2;
        }
  return out;
}
