import { randomInt, randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import type { Bus, Subjects } from "@switchyard/bus";
import { Code, SwitchyardError } from "@switchyard/errors";
import { encodePng, toBytes } from "@switchyard/image";
import { type Manifest, resolveGenerateParams } from "@switchyard/manifest";
import { toGrpcStatus } from "@switchyard/proto";
import { type SubmitMessage, base64ToF32 } from "@switchyard/scheduler";
import { createKserveApi } from "./kserve";
import { startRequest } from "./request-stream";

/** What the gateway counts; the /metrics endpoint renders it. */
export interface GatewayMetrics {
  requests: number;
  succeeded: number;
  failed: Map<string, number>;
  inflight: number;
  queueMsSum: number;
  computeMsSum: number;
  totalMsSum: number;
  stepsStreamed: number;
}

export interface GatewayOptions {
  readonly bus: Bus;
  readonly subjects: Subjects;
  readonly manifest: Manifest;
  /** Most requests this gateway streams at once; beyond it RESOURCE_EXHAUSTED. */
  readonly maxInflight?: number;
  /** How long to wait for the scheduler to accept a request. */
  readonly submitTimeoutMs?: number;
  /** When set, calls must carry `authorization: Bearer <token>` with one of these. */
  readonly apiTokens?: readonly string[];
}

/** Admission control per gateway: a bounded number of concurrent streams. */
export const DEFAULT_MAX_INFLIGHT = 512;
export const DEFAULT_SUBMIT_TIMEOUT_MS = 5000;

const SAMPLER_NAMES: Record<string, string | undefined> = {
  SAMPLER_UNSPECIFIED: undefined,
  SAMPLER_EULER: "euler",
  SAMPLER_HEUN: "heun",
  SAMPLER_PC: "pc",
};

/** The wire GenerateRequest as @grpc/proto-loader decodes it (defaults filled). */
export interface GenerateRequestWire {
  model: string;
  label?: number;
  count?: number;
  steps?: number;
  sampler: string;
  guidance?: number;
  shift?: number;
  seed?: number;
  priority: number;
  previewInterval: number;
  requestId: string;
}

/** Wire request → submit message; INVALID_ARGUMENT naming the field. */
export function toSubmit(req: GenerateRequestWire, m: Manifest, deadlineMs: number | undefined): SubmitMessage {
  if (req.model && req.model !== m.name) throw new SwitchyardError(`model ${JSON.stringify(req.model)} is not served here (serving ${m.name})`, Code.NotFound, { field: "model" });
  if (!(req.sampler in SAMPLER_NAMES)) throw new SwitchyardError(`sampler ${JSON.stringify(req.sampler)} must be one of ${Object.keys(SAMPLER_NAMES).join(", ")}`, Code.InvalidArgument, { field: "sampler" });
  if (!Number.isInteger(req.priority) || Math.abs(req.priority) > 1000) throw new SwitchyardError(`priority ${req.priority} must be an integer >= -1000 and <= 1000`, Code.InvalidArgument, { field: "priority" });
  if (!Number.isInteger(req.previewInterval) || req.previewInterval < 0) throw new SwitchyardError(`preview_interval ${req.previewInterval} must be an integer >= 0`, Code.InvalidArgument, { field: "preview_interval" });
  if (req.requestId.length > 128) throw new SwitchyardError(`request_id must be at most 128 characters`, Code.InvalidArgument, { field: "request_id" });
  const raw: Record<string, unknown> = {
    count: req.count ?? 1,
    seed: req.seed ?? randomInt(0, 2 ** 47),
  };
  if (req.label !== undefined && req.label !== null) raw.label = req.label;
  if (req.steps !== undefined && req.steps !== null) raw.steps = req.steps;
  const sampler = SAMPLER_NAMES[req.sampler];
  if (sampler) raw.sampler = sampler;
  if (req.guidance !== undefined && req.guidance !== null) raw.guidance = req.guidance;
  if (req.shift !== undefined && req.shift !== null) raw.shift = req.shift;
  const p = resolveGenerateParams(raw, m);
  return {
    requestId: req.requestId || randomUUID(),
    model: m.name,
    params: { label: p.label ?? null, count: p.count, steps: p.steps, sampler: p.sampler, guidance: p.guidance, shift: p.shift, seed: p.seed },
    priority: req.priority,
    deadlineMs: deadlineMs ?? null,
    previewInterval: req.previewInterval,
  };
}

function deadlineOf(call: grpc.ServerWritableStream<unknown, unknown>): number | undefined {
  const d = call.getDeadline();
  if (d instanceof Date) return d.getTime();
  return typeof d === "number" && Number.isFinite(d) ? d : undefined;
}

export interface Gateway {
  readonly implementation: grpc.UntypedServiceImplementation;
  /** KServe v2 / Open Inference Protocol service. */
  readonly inference: grpc.UntypedServiceImplementation;
  readonly metrics: GatewayMetrics;
}

export function createGatewayApi(o: GatewayOptions): Gateway {
  const m = o.manifest;
  const maxInflight = o.maxInflight ?? DEFAULT_MAX_INFLIGHT;
  const metrics: GatewayMetrics = { requests: 0, succeeded: 0, failed: new Map(), inflight: 0, queueMsSum: 0, computeMsSum: 0, totalMsSum: 0, stepsStreamed: 0 };
  const { channels, height, width } = m.image;
  const [lo, hi] = m.image.valueRange;

  const image = (data: Float32Array) => ({
    channels, height, width,
    data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    png: Buffer.from(encodePng(toBytes(data, lo, hi), width, height * channels)),
  });

  function authorize(md: grpc.Metadata): void {
    if (!o.apiTokens || o.apiTokens.length === 0) return;
    const h = md.get("authorization")[0];
    const token = typeof h === "string" ? h.replace(/^Bearer\s+/i, "") : "";
    if (!o.apiTokens.includes(token)) throw new SwitchyardError("missing or invalid API token (authorization: Bearer <token>)", Code.Unauthenticated);
  }

  function countFailure(code: Code): void {
    const k = Code[code] ?? String(code);
    metrics.failed.set(k, (metrics.failed.get(k) ?? 0) + 1);
  }

  const modelInfo = () => ({
    name: m.name, version: m.version, numClasses: m.conditioning.numClasses, classNames: m.conditioning.classNames ?? [],
    channels, height, width, numLayers: m.architecture.numLayers, numExperts: m.moe.numExperts, topK: m.moe.topK,
    defaultSteps: m.sampling.defaultSteps, defaultSampler: m.sampling.defaultSampler, defaultGuidance: m.sampling.defaultGuidance,
    maxSteps: m.sampling.maxSteps, ready: true,
  });

  const implementation: grpc.UntypedServiceImplementation = {
    Generate(call: grpc.ServerWritableStream<GenerateRequestWire, unknown>) {
      metrics.requests++;
      metrics.inflight++;
      let finished = false;
      const end = (err?: unknown) => {
        if (finished) return;
        finished = true;
        metrics.inflight--;
        if (err) {
          const se = SwitchyardError.from(err, Code.Internal);
          countFailure(se.code);
          call.emit("error", toGrpcStatus(se));
        } else {
          metrics.succeeded++;
          call.end();
        }
      };
      let submit: SubmitMessage;
      try {
        authorize(call.metadata);
        if (metrics.inflight > maxInflight) throw new SwitchyardError(`gateway is at its limit of ${maxInflight} concurrent requests; retry later`, Code.ResourceExhausted);
        submit = toSubmit(call.request, m, deadlineOf(call));
      } catch (e) {
        end(e);
        return;
      }
      const id = submit.requestId;
      const handle = startRequest(o.bus, o.subjects, m.name, submit, o.submitTimeoutMs ?? DEFAULT_SUBMIT_TIMEOUT_MS, {
        accepted: (reply) => void (!finished && call.write({ accepted: { requestId: id, queuePosition: reply.queuePosition } })),
        progress: (e) => {
          metrics.stepsStreamed++;
          call.write({ progress: { step: e.step, steps: e.steps, t: e.t, preview: (e.previews ?? []).map((p) => image(base64ToF32(p))) } });
        },
        done: (images, e) => {
          metrics.queueMsSum += e.queueMs;
          metrics.computeMsSum += e.computeMs;
          metrics.totalMsSum += e.totalMs;
          call.write({
            result: { requestId: id, images: images.map(image), timings: { queueMs: e.queueMs, computeMs: e.computeMs, totalMs: e.totalMs, modelEvals: e.evals }, seed: e.seed },
          });
          end();
        },
        error: (e) => end(e),
      });
      call.on("cancelled", () => {
        if (finished) return;
        handle.cancel();
        finished = true;
        metrics.inflight--;
        countFailure(Code.Canceled);
      });
    },

    Cancel(call: grpc.ServerUnaryCall<{ requestId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      try {
        authorize(call.metadata);
        if (!call.request.requestId) throw new SwitchyardError("request_id must be set", Code.InvalidArgument, { field: "request_id" });
        o.bus.publish(o.subjects.cancel, { requestId: call.request.requestId });
        cb(null, { cancelled: true });
      } catch (e) {
        cb(toGrpcStatus(e));
      }
    },

    ListModels(call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
      try {
        authorize(call.metadata);
        cb(null, { models: [modelInfo()] });
      } catch (e) {
        cb(toGrpcStatus(e));
      }
    },

    GetModel(call: grpc.ServerUnaryCall<{ name: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      try {
        authorize(call.metadata);
        if (call.request.name && call.request.name !== m.name) throw new SwitchyardError(`model ${JSON.stringify(call.request.name)} not found`, Code.NotFound, { field: "name" });
        cb(null, modelInfo());
      } catch (e) {
        cb(toGrpcStatus(e));
      }
    },
  };
  const kserve = createKserveApi({ bus: o.bus, subjects: o.subjects, manifest: m, submitTimeoutMs: o.submitTimeoutMs ?? DEFAULT_SUBMIT_TIMEOUT_MS, authorize });
  return { implementation, inference: kserve.implementation, metrics };
}
