import { randomInt, randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import type { Bus, Subjects } from "@switchyard/bus";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Manifest, resolveGenerateParams } from "@switchyard/manifest";
import { toGrpcStatus } from "@switchyard/proto";
import type { SubmitMessage } from "@switchyard/scheduler";
import { startRequest } from "./request-stream";

/**
 * KServe v2 / Open Inference Protocol over gRPC (inference.GRPCInferenceService),
 * with Triton's ModelConfig, ModelStatistics and ModelStreamInfer so that
 * perf_analyzer and tritonclient can drive Switchyard.
 *
 * The model takes `LABEL` INT32 [batch, 1] (class per image, -1 = unconditional) and
 * returns `IMAGE` FP32 [batch, C, H, W]. Diffusion options are request parameters:
 * `steps` (int), `sampler` ("euler" | "heun" | "pc"), `guidance` (double), `shift`
 * (double), `seed` (int; image i uses seed + i), `priority` (int).
 */
export const KSERVE_INPUT = "LABEL";
export const KSERVE_OUTPUT = "IMAGE";
/** Largest batch one ModelInfer may carry (rows of LABEL). */
export const KSERVE_MAX_BATCH = 64;

interface InferParameter {
  parameterChoice?: string;
  boolParam?: boolean;
  int64Param?: number;
  stringParam?: string;
  doubleParam?: number;
  uint64Param?: number;
}

interface InferRequestWire {
  modelName: string;
  modelVersion: string;
  id: string;
  parameters: Record<string, InferParameter>;
  inputs: { name: string; datatype: string; shape: number[]; contents?: { intContents: number[] } | null }[];
  outputs: { name: string }[];
  rawInputContents: Buffer[];
}

export interface KserveStats {
  success: { count: number; ns: number };
  fail: { count: number; ns: number };
  queue: { count: number; ns: number };
  computeInfer: { count: number; ns: number };
  inferenceCount: number;
  executionCount: number;
  lastInference: number;
}

function paramValue(p: InferParameter | undefined): number | string | boolean | undefined {
  if (!p) return undefined;
  const k = p.parameterChoice;
  if (k === "boolParam") return p.boolParam;
  if (k === "int64Param") return Number(p.int64Param);
  if (k === "uint64Param") return Number(p.uint64Param);
  if (k === "doubleParam") return p.doubleParam;
  if (k === "stringParam") return p.stringParam;
  return undefined;
}

const MS_TO_NS = 1e6;

/** A ModelInfer request → one submission per image (same options, seed + i). */
export function parseInferRequest(req: InferRequestWire, m: Manifest): { labels: number[]; submits: SubmitMessage[] } {
  if (req.modelName !== m.name) throw new SwitchyardError(`model_name ${JSON.stringify(req.modelName)} is not served here (serving ${m.name})`, Code.NotFound, { field: "model_name" });
  if (req.modelVersion && req.modelVersion !== m.version) {
    throw new SwitchyardError(`model_version ${JSON.stringify(req.modelVersion)} is not served (version ${m.version})`, Code.NotFound, { field: "model_version" });
  }
  if (req.inputs.length !== 1 || req.inputs[0]!.name !== KSERVE_INPUT) {
    throw new SwitchyardError(`inputs must be exactly one tensor named ${KSERVE_INPUT}, got [${req.inputs.map((i) => i.name).join(", ")}]`, Code.InvalidArgument, { field: "inputs" });
  }
  const inp = req.inputs[0]!;
  if (inp.datatype !== "INT32") throw new SwitchyardError(`inputs[0].datatype ${JSON.stringify(inp.datatype)} must be "INT32"`, Code.InvalidArgument, { field: "inputs[0].datatype" });
  const shape = inp.shape.map(Number);
  if (shape.length !== 2 || shape[1] !== 1 || !(shape[0]! >= 1 && shape[0]! <= KSERVE_MAX_BATCH)) {
    throw new SwitchyardError(`inputs[0].shape [${shape.join(", ")}] must be [batch, 1] with 1 <= batch <= ${KSERVE_MAX_BATCH}`, Code.InvalidArgument, { field: "inputs[0].shape" });
  }
  const n = shape[0]!;
  let labels: number[];
  if (req.rawInputContents.length > 0) {
    if (req.rawInputContents.length !== 1) throw new SwitchyardError(`raw_input_contents has ${req.rawInputContents.length} entries, must have 1 (one per input)`, Code.InvalidArgument, { field: "raw_input_contents" });
    const raw = req.rawInputContents[0]!;
    if (raw.byteLength !== n * 4) throw new SwitchyardError(`raw_input_contents[0] has ${raw.byteLength} bytes, shape [${n}, 1] of INT32 needs ${n * 4}`, Code.InvalidArgument, { field: "raw_input_contents[0]" });
    labels = Array.from({ length: n }, (_, i) => raw.readInt32LE(i * 4));
  } else {
    labels = (inp.contents?.intContents ?? []).map(Number);
    if (labels.length !== n) throw new SwitchyardError(`inputs[0].contents.int_contents has ${labels.length} values, shape needs ${n}`, Code.InvalidArgument, { field: "inputs[0].contents" });
  }
  for (const o of req.outputs) if (o.name !== KSERVE_OUTPUT) throw new SwitchyardError(`outputs: unknown output ${JSON.stringify(o.name)}; the model has ${KSERVE_OUTPUT}`, Code.InvalidArgument, { field: "outputs" });
  const known = new Set(["steps", "sampler", "guidance", "shift", "seed", "priority"]);
  for (const k of Object.keys(req.parameters)) {
    if (!known.has(k)) throw new SwitchyardError(`parameters.${k} is not a known parameter (allowed: ${[...known].join(", ")})`, Code.InvalidArgument, { field: `parameters.${k}` });
  }
  const raw: Record<string, unknown> = {};
  for (const k of ["steps", "sampler", "guidance", "shift", "seed"]) {
    const v = paramValue(req.parameters[k]);
    if (v !== undefined) raw[k] = v;
  }
  const priority = Number(paramValue(req.parameters.priority) ?? 0);
  if (!Number.isInteger(priority) || Math.abs(priority) > 1000) throw new SwitchyardError(`parameters.priority ${priority} must be an integer >= -1000 and <= 1000`, Code.InvalidArgument, { field: "parameters.priority" });
  const seed = raw.seed === undefined ? randomInt(0, 2 ** 47) : raw.seed;
  const submits = labels.map((label, i) => {
    if (!Number.isInteger(label) || label < -1 || label >= m.conditioning.numClasses) {
      throw new SwitchyardError(`LABEL[${i}] ${label} must be -1 (unconditional) or an integer >= 0 and <= ${m.conditioning.numClasses - 1}`, Code.InvalidArgument, { field: `inputs[0][${i}]` });
    }
    const p = resolveGenerateParams({ ...raw, seed: typeof seed === "number" ? seed + i : seed, ...(label >= 0 ? { label } : {}) }, m);
    const s: SubmitMessage = {
      requestId: `${req.id || randomUUID()}#${i}-${randomUUID().slice(0, 8)}`,
      model: m.name,
      params: { label: p.label ?? null, count: 1, steps: p.steps, sampler: p.sampler, guidance: p.guidance, shift: p.shift, seed: p.seed },
      priority,
      deadlineMs: null,
      previewInterval: 0,
    };
    return s;
  });
  return { labels, submits };
}

export interface KserveOptions {
  readonly bus: Bus;
  readonly subjects: Subjects;
  readonly manifest: Manifest;
  readonly submitTimeoutMs: number;
  readonly authorize: (md: grpc.Metadata) => void;
}

export function createKserveApi(o: KserveOptions): { implementation: grpc.UntypedServiceImplementation; stats: KserveStats } {
  const m = o.manifest;
  const { channels, height, width } = m.image;
  const P = channels * height * width;
  const stats: KserveStats = {
    success: { count: 0, ns: 0 }, fail: { count: 0, ns: 0 }, queue: { count: 0, ns: 0 }, computeInfer: { count: 0, ns: 0 },
    inferenceCount: 0, executionCount: 0, lastInference: 0,
  };

  /** Runs one ModelInfer; resolves with the response, rejects with a SwitchyardError. */
  function infer(req: InferRequestWire, deadlineMs: number | undefined, onCancel: (f: () => void) => void): Promise<unknown> {
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
      let parsed: ReturnType<typeof parseInferRequest>;
      try {
        parsed = parseInferRequest(req, m);
      } catch (e) {
        stats.fail.count++;
        reject(e);
        return;
      }
      const out = new Float32Array(parsed.submits.length * P);
      let left = parsed.submits.length;
      let failed = false;
      const handles = parsed.submits.map((s, i) =>
        startRequest(o.bus, o.subjects, m.name, { ...s, deadlineMs: deadlineMs ?? null }, o.submitTimeoutMs, {
          done: (images, e) => {
            out.set(images[0]!, i * P);
            stats.queue.count++;
            stats.queue.ns += e.queueMs * MS_TO_NS;
            stats.computeInfer.count++;
            stats.computeInfer.ns += e.computeMs * MS_TO_NS;
            if (--left === 0 && !failed) {
              stats.success.count++;
              stats.success.ns += (Date.now() - t0) * MS_TO_NS;
              stats.inferenceCount += parsed.submits.length;
              stats.executionCount++;
              stats.lastInference = Date.now();
              resolve({
                modelName: m.name,
                modelVersion: m.version,
                id: req.id,
                parameters: {},
                outputs: [{ name: KSERVE_OUTPUT, datatype: "FP32", shape: [parsed.submits.length, channels, height, width], parameters: {} }],
                rawOutputContents: [Buffer.from(out.buffer, out.byteOffset, out.byteLength)],
              });
            }
          },
          error: (e) => {
            if (failed) return;
            failed = true;
            stats.fail.count++;
            stats.fail.ns += (Date.now() - t0) * MS_TO_NS;
            for (const h of handles) h.cancel();
            reject(e);
          },
        }),
      );
      onCancel(() => {
        failed = true;
        for (const h of handles) h.cancel();
      });
    });
  }

  const unary = <Req>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, unknown>) => unknown | Promise<unknown>) =>
    (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      (async () => {
        o.authorize(call.metadata);
        return fn(call.request, call);
      })().then((r) => cb(null, r), (e) => cb(toGrpcStatus(e)));
    };

  const checkModel = (name: string, version: string) => {
    if (name !== m.name) throw new SwitchyardError(`model ${JSON.stringify(name)} not found (serving ${m.name})`, Code.NotFound, { field: "name" });
    if (version && version !== m.version) throw new SwitchyardError(`model ${m.name} version ${JSON.stringify(version)} not found`, Code.NotFound, { field: "version" });
  };
  const dur = (d: { count: number; ns: number }) => ({ count: d.count, ns: Math.round(d.ns) });

  const implementation: grpc.UntypedServiceImplementation = {
    ServerLive: unary(() => ({ live: true })),
    ServerReady: unary(() => ({ ready: true })),
    ModelReady: unary((r: { name: string; version: string }) => {
      checkModel(r.name, r.version);
      return { ready: true };
    }),
    ServerMetadata: unary(() => ({ name: "switchyard", version: "0.1.0", extensions: ["model_configuration", "statistics", "parameters"] })),
    ModelMetadata: unary((r: { name: string; version: string }) => {
      checkModel(r.name, r.version);
      return {
        name: m.name,
        versions: [m.version],
        platform: "switchyard",
        inputs: [{ name: KSERVE_INPUT, datatype: "INT32", shape: [-1, 1] }],
        outputs: [{ name: KSERVE_OUTPUT, datatype: "FP32", shape: [-1, channels, height, width] }],
      };
    }),
    ModelConfig: unary((r: { name: string; version: string }) => {
      checkModel(r.name, r.version);
      return {
        config: {
          name: m.name,
          platform: "switchyard",
          backend: "switchyard",
          maxBatchSize: KSERVE_MAX_BATCH,
          input: [{ name: KSERVE_INPUT, dataType: "TYPE_INT32", format: "FORMAT_NONE", dims: [1], optional: false }],
          output: [{ name: KSERVE_OUTPUT, dataType: "TYPE_FP32", dims: [channels, height, width] }],
          dynamicBatching: { preferredBatchSize: [], maxQueueDelayMicroseconds: 0, preserveOrdering: false },
          modelTransactionPolicy: { decoupled: false },
        },
      };
    }),
    ModelStatistics: unary((r: { name: string; version: string }) => {
      if (r.name) checkModel(r.name, r.version);
      return {
        modelStats: [
          {
            name: m.name,
            version: m.version,
            lastInference: stats.lastInference,
            inferenceCount: stats.inferenceCount,
            executionCount: stats.executionCount,
            inferenceStats: {
              success: dur(stats.success), fail: dur(stats.fail), queue: dur(stats.queue),
              computeInput: { count: stats.computeInfer.count, ns: 0 }, computeInfer: dur(stats.computeInfer),
              computeOutput: { count: stats.computeInfer.count, ns: 0 }, cacheHit: { count: 0, ns: 0 }, cacheMiss: { count: 0, ns: 0 },
            },
            batchStats: [],
          },
        ],
      };
    }),
    ModelInfer(call: grpc.ServerUnaryCall<InferRequestWire, unknown>, cb: grpc.sendUnaryData<unknown>) {
      try {
        o.authorize(call.metadata);
      } catch (e) {
        cb(toGrpcStatus(e));
        return;
      }
      const d = call.getDeadline();
      const deadlineMs = d instanceof Date ? d.getTime() : Number.isFinite(d) ? Number(d) : undefined;
      infer(call.request, deadlineMs, (f) => call.on("cancelled", f)).then((r) => cb(null, r), (e) => cb(toGrpcStatus(e)));
    },
    ModelStreamInfer(call: grpc.ServerDuplexStream<InferRequestWire, unknown>) {
      try {
        o.authorize(call.metadata);
      } catch (e) {
        call.emit("error", toGrpcStatus(e));
        return;
      }
      let pending = 0;
      let ended = false;
      const cancels: (() => void)[] = [];
      call.on("cancelled", () => cancels.forEach((f) => f()));
      const maybeEnd = () => {
        if (ended && pending === 0) call.end();
      };
      call.on("data", (req: InferRequestWire) => {
        pending++;
        infer(req, undefined, (f) => cancels.push(f))
          .then(
            (r) => call.write({ errorMessage: "", inferResponse: r }),
            (e) => call.write({ errorMessage: SwitchyardError.from(e).message, inferResponse: { id: req.id, modelName: req.modelName } }),
          )
          .finally(() => {
            pending--;
            maybeEnd();
          });
      });
      call.on("end", () => {
        ended = true;
        maybeEnd();
      });
    },
  };
  return { implementation, stats };
}
