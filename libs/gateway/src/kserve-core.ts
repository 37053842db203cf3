import { randomUUID } from "node:crypto";
import type { ApiToken } from "./auth";
import type { Bus, Subjects, SubmitMessage } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, extractContext, injectContext, trace, tracer } from "@switchyard/telemetry";
import type { Manifest } from "@switchyard/manifest";
import type { RequestTracker } from "./admission";
import { type RequestWatch, startRequest } from "./request-stream";
import { buildSubmit, clip, workOf } from "./submit";

/**
 * KServe v2 / Open Inference Protocol, independent of the transport: the gRPC
 * service (`kserve.ts`) and the REST endpoints (`http.ts`) decode their wire forms
 * into a `KserveRequest` and render the `KserveResult`; validation, Triton's reserved
 * parameters, admission and statistics live here once.
 *
 * The model takes `LABEL` INT32 [batch, 1] (class per image, -1 = unconditional) and
 * returns `IMAGE` FP32 [batch, C, H, W]. Diffusion options are request parameters:
 * `steps` (int), `sampler` ("euler" | "heun" | "pc"), `guidance` (double),
 * `guidance_t_min` / `guidance_t_max` (double: guidance only for t in that interval),
 * `reuse_threshold` (double in (0, 1]: residual reuse, see the native API), `shift`
 * (double), `seed` (int; image i uses seed + i), `priority` (int; higher runs first —
 * note that Triton's own `priority` means the opposite, 1 = highest).
 */
export const KSERVE_INPUT = "LABEL";
export const KSERVE_OUTPUT = "IMAGE";
/** Largest batch one inference may carry (rows of LABEL). */
export const KSERVE_MAX_BATCH = 64;

/** Switchyard's own request parameters. */
export const KSERVE_PARAMETERS = ["steps", "sampler", "guidance", "guidance_t_min", "guidance_t_max", "reuse_threshold", "shift", "seed", "priority"] as const;

/**
 * Triton's reserved request parameters that clients (perf_analyzer, tritonclient) send.
 * Handled as Triton handles them for a non-decoupled model without sequence batching:
 * - `triton_enable_empty_final_response` (bool): stream responses carry
 *   `triton_final_response: true` (every response here is the final one);
 * - `sequence_id` / `sequence_start` / `sequence_end`: only "no sequence" (0, "", false);
 * - `timeout` (µs): the request's deadline, the earlier of it and the call's;
 * - `binary_data_output` (bool, REST): every output as binary data;
 * - `headers` (REST header forwarding): accepted, nothing is forwarded.
 * Any other `triton_*` name is refused as reserved, as Triton refuses it.
 */
export const TRITON_PARAMETERS = ["triton_enable_empty_final_response", "sequence_id", "sequence_start", "sequence_end", "timeout", "binary_data_output", "headers"] as const;

/** A tensor of the request: values from JSON / typed contents, or raw little-endian bytes. */
export interface KserveInput {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly values?: readonly unknown[];
  readonly raw?: Uint8Array;
}

export interface KserveRequest {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id: string;
  /** Plain values: number, string, boolean (the transports unwrap their parameter forms). */
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly inputs: readonly KserveInput[];
  readonly outputs: readonly { readonly name: string; readonly parameters?: Readonly<Record<string, unknown>> }[];
  /** How the transport names the raw tensor field, for errors ("raw_input_contents" over gRPC). */
  readonly rawField: string;
}

export interface InferOptions {
  readonly enableEmptyFinalResponse: boolean;
  readonly binaryDataOutput: boolean;
  /** From the `timeout` parameter, ms since epoch. */
  readonly deadlineMs: number | undefined;
}

export interface ParsedInfer {
  readonly labels: number[];
  readonly submits: SubmitMessage[];
  readonly options: InferOptions;
}

export interface KserveResult {
  readonly id: string;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly shape: readonly number[];
  /** [batch, C, H, W] row-major. */
  readonly data: Float32Array;
  readonly options: InferOptions;
}

export interface DurationStat {
  count: number;
  ns: number;
}

export interface KserveStats {
  success: DurationStat;
  fail: DurationStat;
  queue: DurationStat;
  computeInfer: DurationStat;
  inferenceCount: number;
  executionCount: number;
  lastInference: number;
}

const invalid = (field: string, msg: string) => new SwitchyardError(`${field} ${msg}`, Code.InvalidArgument, { field });

function noSequence(k: string, v: unknown, model: string): void {
  if (v === undefined || v === 0 || v === "" || v === false || v === "0") return;
  throw invalid(`parameters.${k}`, `${clip(JSON.stringify(v) ?? String(v))} is not allowed: model ${model} is not stateful (no sequence batching); leave it unset or 0/false`);
}

function boolParam(k: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw invalid(`parameters.${k}`, `${clip(JSON.stringify(v) ?? String(v))} must be a boolean`);
  return v;
}

/** Checks the model name and version a request addresses; NOT_FOUND naming the field. */
export function checkModel(m: Manifest, name: string, version: string, fields = { name: "model_name", version: "model_version" }): void {
  if (name !== m.name) throw new SwitchyardError(`${fields.name} ${JSON.stringify(clip(name))} is not served here (serving ${m.name})`, Code.NotFound, { field: fields.name });
  if (version && version !== m.version) throw new SwitchyardError(`${fields.version} ${JSON.stringify(clip(version))} of ${m.name} is not served (version ${m.version})`, Code.NotFound, { field: fields.version });
}

/** A request → one submission per image (same options, seed + i); INVALID_ARGUMENT naming the field. */
export function parseInferRequest(req: KserveRequest, m: Manifest, nowMs = Date.now()): ParsedInfer {
  checkModel(m, req.modelName, req.modelVersion);
  if (req.inputs.length !== 1 || req.inputs[0]!.name !== KSERVE_INPUT) {
    throw invalid("inputs", `[${req.inputs.map((i) => JSON.stringify(clip(i.name))).join(", ")}] must be exactly one tensor named ${KSERVE_INPUT}`);
  }
  const inp = req.inputs[0]!;
  if (inp.datatype !== "INT32") throw invalid("inputs[0].datatype", `${JSON.stringify(clip(inp.datatype))} must be "INT32"`);
  const shape = inp.shape.map(Number);
  if (shape.length !== 2 || shape[1] !== 1 || !(shape[0]! >= 1 && shape[0]! <= KSERVE_MAX_BATCH)) {
    throw invalid("inputs[0].shape", `[${shape.slice(0, 8).join(", ")}] must be [batch, 1] with 1 <= batch <= ${KSERVE_MAX_BATCH}`);
  }
  const n = shape[0]!;
  let labels: number[];
  if (inp.raw) {
    const raw = inp.raw;
    if (raw.byteLength !== n * 4) throw invalid(`${req.rawField}[0]`, `has ${raw.byteLength} bytes; shape [${n}, 1] of INT32 needs ${n * 4}`);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    labels = Array.from({ length: n }, (_, i) => view.getInt32(i * 4, true));
  } else {
    const values = inp.values ?? [];
    if (values.length !== n) throw invalid("inputs[0].data", `has ${values.length} values; shape [${n}, 1] needs ${n}`);
    labels = values.map((v) => (typeof v === "number" ? v : Number.NaN));
  }
  for (const o of req.outputs) {
    if (o.name !== KSERVE_OUTPUT) throw invalid("outputs", `${JSON.stringify(clip(o.name))} is not an output of ${m.name}; it has ${KSERVE_OUTPUT}`);
    for (const k of Object.keys(o.parameters ?? {})) {
      if (k !== "binary_data") throw invalid(`outputs[0].parameters.${clip(k)}`, `is not supported (allowed: binary_data)`);
    }
  }
  const params = req.parameters;
  const known = new Set<string>([...KSERVE_PARAMETERS, ...TRITON_PARAMETERS]);
  for (const k of Object.keys(params)) {
    if (known.has(k)) continue;
    if (k.startsWith("triton_")) throw invalid(`parameters.${clip(k)}`, `is reserved by Triton and not supported here (supported: ${TRITON_PARAMETERS.join(", ")})`);
    throw invalid(`parameters.${clip(k)}`, `is not a known parameter (allowed: ${KSERVE_PARAMETERS.join(", ")}, and Triton's ${TRITON_PARAMETERS.join(", ")})`);
  }
  for (const k of ["sequence_id", "sequence_start", "sequence_end"]) noSequence(k, params[k], m.name);
  let deadlineMs: number | undefined;
  if (params.timeout !== undefined) {
    const t = params.timeout;
    if (typeof t !== "number" || !Number.isInteger(t) || t < 0) throw invalid("parameters.timeout", `${clip(JSON.stringify(t) ?? String(t))} must be an integer >= 0 (microseconds; 0 = none)`);
    if (t > 0) deadlineMs = nowMs + t / 1000;
  }
  const outBinary = req.outputs.some((o) => o.parameters?.binary_data === true);
  const options: InferOptions = {
    enableEmptyFinalResponse: boolParam("triton_enable_empty_final_response", params.triton_enable_empty_final_response),
    binaryDataOutput: boolParam("binary_data_output", params.binary_data_output) || outBinary,
    deadlineMs,
  };
  const gen: Record<string, unknown> = {};
  for (const k of ["steps", "sampler", "guidance", "guidance_t_min", "guidance_t_max", "reuse_threshold", "shift"]) if (params[k] !== undefined) gen[k] = params[k];
  const seed = params.seed;
  const first = buildSubmit({ params: { ...gen, ...(seed !== undefined ? { seed } : {}) }, priority: params.priority as number | undefined }, m, KSERVE_FIELDS);
  const base = req.id || randomUUID();
  const submits = labels.map((label, i) => {
    if (!Number.isInteger(label) || label < -1 || label >= m.conditioning.numClasses) {
      throw invalid(`${KSERVE_INPUT}[${i}]`, `${label} must be -1 (unconditional) or an integer >= 0 and <= ${m.conditioning.numClasses - 1}`);
    }
    return buildSubmit(
      {
        requestId: `${clip(base, 64)}#${i}-${randomUUID().slice(0, 8)}`,
        params: { ...gen, seed: first.params.seed + i, ...(label >= 0 ? { label } : {}) },
        priority: first.priority,
      },
      m,
      KSERVE_FIELDS,
    );
  });
  return { labels, submits, options };
}

const KSERVE_FIELDS = { priority: "parameters.priority", previewInterval: "parameters.preview_interval", requestId: "id", paramPrefix: "parameters" };

export interface KserveCoreOptions {
  readonly bus: Bus;
  readonly subjects: Subjects;
  readonly manifest: Manifest;
  readonly submitTimeoutMs: number;
  readonly tracker: RequestTracker;
  readonly watch?: RequestWatch;
}

export interface KserveCore {
  readonly stats: KserveStats;
  /**
   * Runs one inference: admission, validation, one submission per image; resolves with
   * the images, rejects with a SwitchyardError. `signal` aborts it (client gone). Pass
   * the transport's decoder as a function so that a request failing to decode is counted.
   */
  /** `trace`: the caller's W3C trace context carrier (gRPC metadata or HTTP headers as a map). */
  /** `caller`: the API token it came with (its limits apply); undefined with tokens off. */
  infer(req: KserveRequest | (() => KserveRequest), callDeadlineMs: number | undefined, signal?: AbortSignal, trace?: Record<string, unknown>, caller?: ApiToken): Promise<KserveResult>;
  /** Model metadata as KServe v2 defines it (REST field names; gRPC maps them). */
  metadata(): { name: string; versions: string[]; platform: string; inputs: TensorMeta[]; outputs: TensorMeta[] };
  readonly server: { name: string; version: string; extensions: string[] };
}

export interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
}

const MS_TO_NS = 1e6;

export function createKserveCore(o: KserveCoreOptions): KserveCore {
  const m = o.manifest;
  const { channels, height, width } = m.image;
  const P = channels * height * width;
  const stats: KserveStats = {
    success: { count: 0, ns: 0 }, fail: { count: 0, ns: 0 }, queue: { count: 0, ns: 0 }, computeInfer: { count: 0, ns: 0 },
    inferenceCount: 0, executionCount: 0, lastInference: 0,
  };

  function infer(decode: KserveRequest | (() => KserveRequest), callDeadlineMs: number | undefined, signal?: AbortSignal, carrier?: Record<string, unknown>, caller?: ApiToken): Promise<KserveResult> {
    const t0 = Date.now();
    const tracked = o.tracker.begin("kserve");
    const span = tracer().startSpan("gateway.ModelInfer", { kind: SpanKind.SERVER }, carrier ? extractContext(carrier, ROOT_CONTEXT) : ROOT_CONTEXT);
    const traceContext = injectContext(trace.setSpan(ROOT_CONTEXT, span));
    const failStat = () => {
      stats.fail.count++;
      stats.fail.ns += (Date.now() - t0) * MS_TO_NS;
    };
    // Removed when the request settles: a ModelStreamInfer stream's one signal serves all
    // its requests, and a listener left behind kept each request's images alive.
    let onAbort: (() => void) | undefined;
    const settled = new Promise<KserveResult>((resolve, reject) => {
      let parsed: ParsedInfer;
      let req: KserveRequest;
      try {
        tracked.admit();
        req = typeof decode === "function" ? decode() : decode;
        parsed = parseInferRequest(req, m, t0);
        tracked.claim(caller, {
          work: parsed.submits.reduce((w, s) => w + workOf(s), 0),
          priority: Math.max(...parsed.submits.map((s) => s.priority)),
          priorityField: KSERVE_FIELDS.priority,
        });
      } catch (e) {
        failStat();
        tracked.fail(e);
        reject(SwitchyardError.from(e));
        return;
      }
      const deadlines = [callDeadlineMs, parsed.options.deadlineMs].filter((d): d is number => d !== undefined);
      const deadlineMs = deadlines.length ? Math.min(...deadlines) : null;
      const n = parsed.submits.length;
      const out = new Float32Array(n * P);
      let left = n;
      let failed = false;
      let queueMs = 0;
      let computeMs = 0;
      const handles = parsed.submits.map((s, i) =>
        startRequest(o.bus, o.subjects, m.name, { ...s, deadlineMs, ...(Object.keys(traceContext).length ? { trace: traceContext } : {}) }, o.submitTimeoutMs, {
          ...(i === 0 ? { accepted: () => tracked.accepted() } : {}),
          done: (images, e) => {
            out.set(images[0]!, i * P);
            queueMs += e.queueMs;
            computeMs += e.tickMs ?? e.computeMs;
            if (--left > 0 || failed) return;
            // One request, as Triton counts them: its images' mean queue time, and the mean wall
            // time of the ticks they ran in (Triton's compute_infer is its batches' execution time).
            stats.queue.count++;
            stats.queue.ns += (queueMs / n) * MS_TO_NS;
            stats.computeInfer.count++;
            stats.computeInfer.ns += (computeMs / n) * MS_TO_NS;
            stats.success.count++;
            stats.success.ns += (Date.now() - t0) * MS_TO_NS;
            stats.inferenceCount += n;
            stats.executionCount++;
            stats.lastInference = Date.now();
            tracked.succeed({ queueMs: queueMs / n, computeMs: computeMs / n, totalMs: Date.now() - t0 });
            resolve({ id: req.id, modelName: m.name, modelVersion: m.version, shape: [n, channels, height, width], data: out, options: parsed.options });
          },
          error: (e) => {
            if (failed) return;
            failed = true;
            failStat();
            tracked.fail(e);
            for (const h of handles) h.cancel();
            reject(e);
          },
        }, o.watch),
      );
      onAbort = () => {
        if (failed || left === 0) return;
        failed = true;
        tracked.cancel();
        for (const h of handles) h.cancel();
        reject(new SwitchyardError("the client went away", Code.Canceled));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    return settled
      .catch((e: unknown) => {
        span.setStatus({ code: SpanStatusCode.ERROR, message: SwitchyardError.from(e).rawMessage });
        throw e;
      })
      .finally(() => {
        span.end();
        if (onAbort) signal?.removeEventListener("abort", onAbort);
      });
  }

  return {
    stats,
    infer,
    metadata: () => ({
      name: m.name,
      versions: [m.version],
      platform: "switchyard",
      inputs: [{ name: KSERVE_INPUT, datatype: "INT32", shape: [-1, 1] }],
      outputs: [{ name: KSERVE_OUTPUT, datatype: "FP32", shape: [-1, channels, height, width] }],
    }),
    server: { name: "switchyard", version: "0.1.0", extensions: ["model_configuration", "statistics", "parameters", "binary_tensor_data"] },
  };
}
