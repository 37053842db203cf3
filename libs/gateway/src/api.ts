import type * as grpc from "@grpc/grpc-js";
import { type Bus, MAX_REQUEST_ID_CHARS, type Subjects, type SubmitMessage, base64ToF32, channels as busChannels, publish } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";
import { encodePng, toBytes } from "@switchyard/image";
import type { Manifest } from "@switchyard/manifest";
import { toGrpcStatus } from "@switchyard/proto";
import { type GatewayMetrics, type RequestTracker, createGatewayMetrics, createRequestTracker } from "./admission";
import { type ApiToken, authenticate, tokensFromList } from "./auth";
import { createKserveGrpc, deadlineOf } from "./kserve";
import { type KserveCore, createKserveCore } from "./kserve-core";
import { NATIVE_FIELDS, buildSubmit, clip, workOf } from "./submit";
import { unaryHandler } from "./unary";
import { type RequestWatch, startRequest } from "./request-stream";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, extractContext, injectContext, trace, tracer } from "@switchyard/telemetry";

export interface GatewayOptions {
  readonly bus: Bus;
  readonly subjects: Subjects;
  readonly manifest: Manifest;
  /** Most requests this gateway streams at once; beyond it RESOURCE_EXHAUSTED. */
  readonly maxInflight?: number;
  /** How long to wait for the scheduler to accept a request. */
  readonly submitTimeoutMs?: number;
  /** Bytes a Generate stream may hold for a client that is not reading; beyond it RESOURCE_EXHAUSTED. */
  readonly maxStreamBufferBytes?: number;
  /** When set, calls must carry `authorization: Bearer <token>` with one of these (a bare string: a token without limits). */
  readonly apiTokens?: readonly (string | ApiToken)[];
  /** Submit retries and the silent-stream watch (request-stream.ts). */
  readonly watch?: RequestWatch;
}

/** Admission control per gateway: a bounded number of concurrent streams. */
export const DEFAULT_MAX_INFLIGHT = 512;
export const DEFAULT_SUBMIT_TIMEOUT_MS = 5000;
/**
 * A stream's unread bytes before the gateway gives up on its client: room for every
 * preview of a large request several steps deep (256 images × ~4 KB per step), while
 * eight stalled preview streams can no longer grow the gateway by 72 MB.
 */
export const DEFAULT_MAX_STREAM_BUFFER_BYTES = 4 * 1024 * 1024;

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
  guidanceTMin?: number;
  guidanceTMax?: number;
  reuseThreshold?: number;
  shift?: number;
  seed?: number;
  priority: number;
  previewInterval: number;
  requestId: string;
}

/** Wire request → submit message; INVALID_ARGUMENT naming the field. */
export function toSubmit(req: GenerateRequestWire, m: Manifest, deadlineMs: number | undefined): SubmitMessage {
  if (req.model && req.model !== m.name) throw new SwitchyardError(`model ${JSON.stringify(clip(req.model))} is not served here (serving ${m.name})`, Code.NotFound, { field: "model" });
  if (!(req.sampler in SAMPLER_NAMES)) throw new SwitchyardError(`sampler ${JSON.stringify(clip(String(req.sampler)))} must be one of ${Object.keys(SAMPLER_NAMES).join(", ")}`, Code.InvalidArgument, { field: "sampler" });
  return buildSubmit(
    {
      requestId: req.requestId,
      params: { label: req.label, count: req.count ?? 1, steps: req.steps, sampler: SAMPLER_NAMES[req.sampler], guidance: req.guidance, shift: req.shift, seed: req.seed, guidance_t_min: req.guidanceTMin, guidance_t_max: req.guidanceTMax, reuse_threshold: req.reuseThreshold },
      priority: req.priority,
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      previewInterval: req.previewInterval,
    },
    m,
  );
}

export interface Gateway {
  readonly implementation: grpc.UntypedServiceImplementation;
  /** KServe v2 / Open Inference Protocol service. */
  readonly inference: grpc.UntypedServiceImplementation;
  readonly metrics: GatewayMetrics;
  /** Admission and accounting shared with the HTTP endpoints. */
  readonly tracker: RequestTracker;
  /** KServe v2 logic shared by gRPC and REST. */
  readonly kserve: KserveCore;
  /** The API-token check every protocol applies: the caller (undefined with tokens off), or UNAUTHENTICATED. */
  authorizeHeader(value: string | undefined): ApiToken | undefined;
  /** A float32 image [C, H, W] as its 8-bit PNG file. */
  png(data: Float32Array): Buffer;
}

export function createGatewayApi(o: GatewayOptions): Gateway {
  const m = o.manifest;
  const maxInflight = o.maxInflight ?? DEFAULT_MAX_INFLIGHT;
  const maxBufferedBytes = o.maxStreamBufferBytes ?? DEFAULT_MAX_STREAM_BUFFER_BYTES;
  const metrics = createGatewayMetrics();
  const tracker = createRequestTracker(metrics, maxInflight);
  const { channels, height, width } = m.image;
  const [lo, hi] = m.image.valueRange;

  const png = (data: Float32Array) => Buffer.from(encodePng(toBytes(data, lo, hi), width, height * channels));
  const image = (data: Float32Array) => ({
    channels, height, width,
    data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    png: png(data),
  });

  const tokens = tokensFromList(o.apiTokens ?? []);
  const authorizeHeader = (value: string | undefined) => authenticate(value, tokens);
  function authorize(md: grpc.Metadata): ApiToken | undefined {
    const h = md.get("authorization")[0];
    return authorizeHeader(typeof h === "string" ? h : undefined);
  }
  const unary = unaryHandler(authorize);

  const modelInfo = () => ({
    name: m.name, version: m.version, numClasses: m.conditioning.numClasses, classNames: m.conditioning.classNames ?? [],
    channels, height, width, numLayers: m.architecture.numLayers, numExperts: m.moe.numExperts, topK: m.moe.topK,
    defaultSteps: m.sampling.defaultSteps, defaultSampler: m.sampling.defaultSampler, defaultGuidance: m.sampling.defaultGuidance,
    maxSteps: m.sampling.maxSteps, ready: true,
  });

  const implementation: grpc.UntypedServiceImplementation = {
    Generate(call: grpc.ServerWritableStream<GenerateRequestWire, unknown>) {
      const tracked = tracker.begin();
      // The request's span here continues the client's trace (traceparent metadata) and goes with the submit.
      const span = tracer().startSpan("gateway.Generate", { kind: SpanKind.SERVER }, extractContext(call.metadata.getMap(), ROOT_CONTEXT));
      let finished = false;
      const fail = (err: unknown) => {
        if (finished) return;
        finished = true;
        span.setStatus({ code: SpanStatusCode.ERROR, message: SwitchyardError.from(err).rawMessage });
        span.end();
        tracked.fail(err);
        call.emit("error", toGrpcStatus(SwitchyardError.from(err, Code.Internal)));
      };
      let submit: SubmitMessage;
      try {
        const caller = authorize(call.metadata);
        tracked.admit();
        submit = toSubmit(call.request, m, deadlineOf(call));
        tracked.claim(caller, { work: workOf(submit), priority: submit.priority, priorityField: NATIVE_FIELDS.priority });
      } catch (e) {
        fail(e);
        return;
      }
      const id = submit.requestId;
      span.setAttribute("switchyard.request_id", id);
      const traceContext = injectContext(trace.setSpan(ROOT_CONTEXT, span));
      if (Object.keys(traceContext).length > 0) submit = { ...submit, trace: traceContext };
      // Bytes written to this stream that the client has not taken yet (a write's
      // callback fires once HTTP/2 flow control lets it out). A client that stops
      // reading is cut off past the bound instead of growing the gateway's memory.
      let buffered = 0;
      const send = (msg: unknown, bytes: number): boolean => {
        if (finished) return false;
        buffered += bytes;
        call.write(msg, () => void (buffered -= bytes));
        if (buffered <= maxBufferedBytes) return true;
        handle.cancel();
        fail(new SwitchyardError(`the client is not reading its stream: ${buffered} bytes are waiting, over the limit of ${maxBufferedBytes}`, Code.ResourceExhausted));
        return false;
      };
      const imagesBytes = (imgs: { data: Buffer; png: Buffer }[]) => imgs.reduce((n, i) => n + i.data.byteLength + i.png.byteLength, 64);
      const handle = startRequest(o.bus, o.subjects, m.name, submit, o.submitTimeoutMs ?? DEFAULT_SUBMIT_TIMEOUT_MS, {
        accepted: (reply) => {
          tracked.accepted();
          send({ accepted: { requestId: id, queuePosition: reply.queuePosition } }, 64);
        },
        progress: (e) => {
          tracked.progress();
          metrics.stepsStreamed++;
          const preview = (e.previews ?? []).map((p) => image(base64ToF32(p)));
          send({ progress: { step: e.step, steps: e.steps, t: e.t, preview } }, imagesBytes(preview));
        },
        done: (images, e) => {
          if (finished) return;
          // the result is always sent, whatever is buffered: it is what the client asked for
          call.write({ result: { requestId: id, images: images.map(image), timings: { queueMs: e.queueMs, computeMs: e.computeMs, totalMs: e.totalMs, modelEvals: e.evals, guidedEvals: e.guidedEvals ?? 0, reusedEvals: e.reusedEvals ?? 0, fullEvals: e.fullEvals ?? 0 }, seed: e.seed } });
          finished = true;
          span.end();
          tracked.succeed(e);
          call.end();
        },
        error: (e) => fail(e),
      }, o.watch);
      call.on("cancelled", () => {
        if (finished) return;
        handle.cancel();
        finished = true;
        span.end();
        tracked.cancel();
      });
    },

    Cancel: unary((r: { requestId: string }) => {
      if (!r.requestId) throw new SwitchyardError("request_id must be set", Code.InvalidArgument, { field: "request_id" });
      if (r.requestId.length > MAX_REQUEST_ID_CHARS) throw new SwitchyardError(`request_id has ${r.requestId.length} characters; at most ${MAX_REQUEST_ID_CHARS} allowed`, Code.InvalidArgument, { field: "request_id" });
      publish(o.bus, busChannels(o.subjects).cancel, { requestId: r.requestId });
      return { cancelled: true };
    }),

    ListModels: unary(() => ({ models: [modelInfo()] })),

    GetModel: unary((r: { name: string }) => {
      if (r.name && r.name !== m.name) throw new SwitchyardError(`model ${JSON.stringify(clip(r.name))} not found (serving ${m.name})`, Code.NotFound, { field: "name" });
      return modelInfo();
    }),
  };
  const kserve = createKserveCore({ bus: o.bus, subjects: o.subjects, manifest: m, submitTimeoutMs: o.submitTimeoutMs ?? DEFAULT_SUBMIT_TIMEOUT_MS, tracker, ...(o.watch ? { watch: o.watch } : {}) });
  const inference = createKserveGrpc({ core: kserve, manifest: m, authorize });
  return { implementation, inference, metrics, tracker, kserve, authorizeHeader, png };
}
