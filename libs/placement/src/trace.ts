import { readFileSync } from "node:fs";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type SafeTensors, parseSafeTensors, toFloat32 } from "@switchyard/tensor";

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
  if (md.format !== "switchyard-trace") throw bad(source, `format ${JSON.stringify(md.format)} must be "switchyard-trace"`);
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
