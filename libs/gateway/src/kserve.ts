import type * as grpc from "@grpc/grpc-js";
import type { ApiToken } from "./auth";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { Manifest } from "@switchyard/manifest";
import { toGrpcStatus } from "@switchyard/proto";
import { unaryHandler } from "./unary";
import { type KserveCore, type KserveRequest, type KserveResult, KSERVE_INPUT, KSERVE_MAX_BATCH, KSERVE_OUTPUT, checkModel } from "./kserve-core";

/**
 * KServe v2 / Open Inference Protocol over gRPC (inference.GRPCInferenceService),
 * with Triton's ModelConfig, ModelStatistics and ModelStreamInfer so that
 * perf_analyzer and tritonclient can drive Switchyard. The protocol's logic is in
 * `kserve-core.ts`; this module only maps the wire messages.
 */
interface InferParameterWire {
  parameterChoice?: string;
  boolParam?: boolean;
  int64Param?: number | string;
  stringParam?: string;
  doubleParam?: number;
  uint64Param?: number | string;
}

interface InferTensorContentsWire {
  boolContents?: boolean[];
  intContents?: number[];
  int64Contents?: (number | string)[];
  uintContents?: number[];
  uint64Contents?: (number | string)[];
  fp32Contents?: number[];
  fp64Contents?: number[];
}

/** ModelInferRequest as @grpc/proto-loader decodes it. */
export interface InferRequestWire {
  modelName: string;
  modelVersion: string;
  id: string;
  parameters: Record<string, InferParameterWire>;
  inputs: { name: string; datatype: string; shape: (number | string)[]; parameters?: Record<string, InferParameterWire>; contents?: InferTensorContentsWire | null }[];
  outputs: { name: string; parameters?: Record<string, InferParameterWire> }[];
  rawInputContents: Buffer[];
}

function paramValue(p: InferParameterWire | undefined): number | string | boolean | undefined {
  if (!p) return undefined;
  switch (p.parameterChoice) {
    case "boolParam":
      return p.boolParam;
    case "int64Param":
      return Number(p.int64Param);
    case "uint64Param":
      return Number(p.uint64Param);
    case "doubleParam":
      return p.doubleParam;
    case "stringParam":
      return p.stringParam;
    default:
      return undefined;
  }
}

function plainParams(ps: Record<string, InferParameterWire> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ps ?? {})) out[k] = paramValue(v);
  return out;
}

function contentsValues(c: InferTensorContentsWire | null | undefined): unknown[] {
  if (!c) return [];
  for (const k of ["intContents", "int64Contents", "uintContents", "uint64Contents", "fp32Contents", "fp64Contents", "boolContents"] as const) {
    const v = c[k];
    if (v && v.length > 0) return v.map((x) => (typeof x === "string" ? Number(x) : x));
  }
  return [];
}

/** Wire ModelInferRequest → the protocol's request (raw tensors are views on the message's bytes). */
export function fromWire(req: InferRequestWire): KserveRequest {
  const raw = req.rawInputContents ?? [];
  if (raw.length > 0 && raw.length !== req.inputs.length) {
    throw new SwitchyardError(`raw_input_contents has ${raw.length} entries; it must have one per input (${req.inputs.length})`, Code.InvalidArgument, { field: "raw_input_contents" });
  }
  return {
    modelName: req.modelName,
    modelVersion: req.modelVersion,
    id: req.id,
    parameters: plainParams(req.parameters),
    inputs: req.inputs.map((t, i) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape.map(Number),
      ...(raw.length > 0 ? { raw: raw[i]! } : { values: contentsValues(t.contents) }),
    })),
    outputs: req.outputs.map((o) => ({ name: o.name, parameters: plainParams(o.parameters) })),
    rawField: "raw_input_contents",
  };
}

function toWireResponse(r: KserveResult, streamed: boolean) {
  return {
    modelName: r.modelName,
    modelVersion: r.modelVersion,
    id: r.id,
    parameters: streamed && r.options.enableEmptyFinalResponse ? { triton_final_response: { boolParam: true } } : {},
    outputs: [{ name: KSERVE_OUTPUT, datatype: "FP32", shape: r.shape, parameters: {} }],
    rawOutputContents: [Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength)],
  };
}

export interface KserveGrpcOptions {
  readonly core: KserveCore;
  readonly manifest: Manifest;
  /** The caller (undefined: tokens off); UNAUTHENTICATED when the call carries no valid token. */
  readonly authorize: (md: grpc.Metadata) => ApiToken | undefined;
}

/** A call's gRPC deadline as ms since epoch; undefined when it has none. */
export function deadlineOf(call: { getDeadline(): grpc.Deadline }): number | undefined {
  const d = call.getDeadline();
  if (d instanceof Date) return d.getTime();
  return typeof d === "number" && Number.isFinite(d) ? d : undefined;
}

export function createKserveGrpc(o: KserveGrpcOptions): grpc.UntypedServiceImplementation {
  const m = o.manifest;
  const { core } = o;
  const { channels, height, width } = m.image;

  const unary = unaryHandler(o.authorize);

  const check = (r: { name: string; version: string }) => checkModel(m, r.name, r.version, { name: "name", version: "version" });
  const dur = (d: { count: number; ns: number }) => ({ count: d.count, ns: Math.round(d.ns) });

  const runInfer = (wire: InferRequestWire, deadlineMs: number | undefined, signal: AbortSignal, md: grpc.Metadata, caller: ApiToken | undefined) =>
    core.infer(() => fromWire(wire), deadlineMs, signal, md.getMap(), caller);

  return {
    ServerLive: unary(() => ({ live: true })),
    ServerReady: unary(() => ({ ready: true })),
    ModelReady: unary((r: { name: string; version: string }) => {
      check(r);
      return { ready: true };
    }),
    ServerMetadata: unary(() => core.server),
    ModelMetadata: unary((r: { name: string; version: string }) => {
      check(r);
      return core.metadata();
    }),
    ModelConfig: unary((r: { name: string; version: string }) => {
      check(r);
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
      if (r.name) check(r);
      const s = core.stats;
      return {
        modelStats: [
          {
            name: m.name,
            version: m.version,
            lastInference: s.lastInference,
            inferenceCount: s.inferenceCount,
            executionCount: s.executionCount,
            inferenceStats: {
              success: dur(s.success), fail: dur(s.fail), queue: dur(s.queue),
              computeInput: { count: s.computeInfer.count, ns: 0 }, computeInfer: dur(s.computeInfer),
              computeOutput: { count: s.computeInfer.count, ns: 0 }, cacheHit: { count: 0, ns: 0 }, cacheMiss: { count: 0, ns: 0 },
            },
            batchStats: [],
          },
        ],
      };
    }),
    ModelInfer(call: grpc.ServerUnaryCall<InferRequestWire, unknown>, cb: grpc.sendUnaryData<unknown>) {
      let caller: ApiToken | undefined;
      try {
        caller = o.authorize(call.metadata);
      } catch (e) {
        cb(toGrpcStatus(e));
        return;
      }
      const ac = new AbortController();
      call.on("cancelled", () => ac.abort());
      runInfer(call.request, deadlineOf(call), ac.signal, call.metadata, caller).then((r) => cb(null, toWireResponse(r, false)), (e) => cb(toGrpcStatus(e)));
    },
    ModelStreamInfer(call: grpc.ServerDuplexStream<InferRequestWire, unknown>) {
      let caller: ApiToken | undefined;
      try {
        caller = o.authorize(call.metadata);
      } catch (e) {
        call.emit("error", toGrpcStatus(e));
        return;
      }
      let pending = 0;
      let ended = false;
      const ac = new AbortController();
      call.on("cancelled", () => ac.abort());
      const maybeEnd = () => {
        if (ended && pending === 0 && !ac.signal.aborted) call.end();
      };
      call.on("data", (req: InferRequestWire) => {
        pending++;
        runInfer(req, deadlineOf(call), ac.signal, call.metadata, caller)
          .then(
            (r) => call.write({ errorMessage: "", inferResponse: toWireResponse(r, true) }),
            (e) => {
              if (ac.signal.aborted) return;
              const final = req.parameters?.triton_enable_empty_final_response?.boolParam === true ? { triton_final_response: { boolParam: true } } : {};
              call.write({ errorMessage: SwitchyardError.from(e).message, inferResponse: { id: req.id, modelName: req.modelName, parameters: final } });
            },
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
}
