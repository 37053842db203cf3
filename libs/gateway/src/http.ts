import type { IncomingMessage, ServerResponse } from "node:http";
import type { ApiToken } from "./auth";
import { z } from "zod";
import type { Bus, Subjects } from "@switchyard/contract";
import { parseOrThrow } from "@switchyard/config";
import { Code, SwitchyardError } from "@switchyard/errors";
import { ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, extractContext, injectContext, trace, tracer } from "@switchyard/telemetry";
import { MAX_IMAGES_PER_REQUEST, type Manifest } from "@switchyard/manifest";
import type { Gateway } from "./api";
import { type KserveRequest, type KserveResult, KSERVE_INPUT, KSERVE_MAX_BATCH, KSERVE_OUTPUT, checkModel } from "./kserve-core";
import { type RequestWatch, startRequest } from "./request-stream";
import { buildSubmit, clip, workOf } from "./submit";

/**
 * The gateway's HTTP/REST endpoints, on one port (Triton's convention is 8000):
 *
 * - KServe v2 / Open Inference Protocol REST: `/v2/health/live|ready`, `/v2`,
 *   `/v2/models/{m}[/versions/{v}]` (metadata), `/ready`, `/config` (Triton's JSON
 *   model configuration), `/stats`, `/infer` with JSON tensors or Triton's binary
 *   tensor extension (`Inference-Header-Content-Length`: a JSON header, then the raw
 *   bytes of each tensor that declares `binary_data_size`).
 * - OpenAI-style images: `POST /v1/images/generations` (`prompt` is a class name of the
 *   model), `GET /v1/models`; errors in OpenAI's `{error: {message, type, param, code}}`.
 *
 * Both sit behind the same API tokens (`Authorization: Bearer <token>`), admission,
 * validation and counters as the gRPC services: they call the same `Gateway`.
 */
export interface HttpApiOptions {
  readonly gateway: Gateway;
  readonly manifest: Manifest;
  readonly bus: Bus;
  readonly subjects: Subjects;
  readonly submitTimeoutMs: number;
  readonly watch?: RequestWatch;
  /** Largest request body accepted; larger → 413. */
  readonly maxBodyBytes?: number;
}

/** Triton's HTTP port convention. */
export const DEFAULT_HTTP_PORT = 8000;

/** Requests are small (labels and options); 4 MiB as on the gRPC port. */
export const DEFAULT_MAX_HTTP_BODY_BYTES = 4 * 1024 * 1024;

/** gRPC-aligned code → HTTP status. */
export function httpStatusOf(code: Code): number {
  switch (code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
    case Code.FailedPrecondition:
      return 400;
    case Code.Unauthenticated:
      return 401;
    case Code.PermissionDenied:
      return 403;
    case Code.NotFound:
      return 404;
    case Code.AlreadyExists:
    case Code.Aborted:
      return 409;
    case Code.ResourceExhausted:
      return 429;
    case Code.Canceled:
      return 499;
    case Code.Unimplemented:
      return 501;
    case Code.Unavailable:
      return 503;
    case Code.DeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers }).end(text);
};

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) {
      reject(new SwitchyardError(`request body of ${declared} bytes is over the limit of ${limit} bytes`, Code.ResourceExhausted, { details: { http: "413" } }));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.byteLength;
      if (size > limit) {
        reject(new SwitchyardError(`request body is over the limit of ${limit} bytes`, Code.ResourceExhausted, { details: { http: "413" } }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks, size)));
    req.on("error", reject);
  });
}

function parseJson(buf: Buffer, what: string): unknown {
  if (buf.byteLength === 0) return {};
  try {
    return JSON.parse(buf.toString("utf8"));
  } catch (e) {
    throw new SwitchyardError(`${what} is not valid JSON: ${(e as Error).message}`, Code.InvalidArgument, { cause: e, field: "(body)" });
  }
}

const paramValue = z.union([z.boolean(), z.number(), z.string()]);
const restInferSchema = z.strictObject({
  id: z.string().max(128).optional(),
  parameters: z.record(z.string(), paramValue).optional(),
  inputs: z
    .array(
      z.strictObject({
        name: z.string(),
        shape: z.array(z.number().int().min(0)).max(8),
        datatype: z.string(),
        parameters: z.record(z.string(), paramValue).optional(),
        data: z.array(z.unknown()).optional(),
      }),
    )
    .max(8),
  outputs: z.array(z.strictObject({ name: z.string(), parameters: z.record(z.string(), paramValue).optional() })).max(8).optional(),
});

function flatten(v: readonly unknown[], out: unknown[] = [], limit = KSERVE_MAX_BATCH * 4): unknown[] {
  for (const x of v) {
    if (out.length > limit) break;
    if (Array.isArray(x)) flatten(x, out, limit);
    else out.push(x);
  }
  return out;
}

/** A KServe REST infer body (JSON, or JSON header + binary tensors) → the protocol's request. */
export function parseRestInfer(body: Buffer, headerLength: string | undefined, model: string, version: string): KserveRequest {
  let headerBytes = body;
  let binary: Buffer | undefined;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isInteger(n) || n < 0 || n > body.byteLength) {
      throw new SwitchyardError(`Inference-Header-Content-Length ${clip(headerLength)} must be an integer >= 0 and <= the body's ${body.byteLength} bytes`, Code.InvalidArgument, { field: "Inference-Header-Content-Length" });
    }
    headerBytes = body.subarray(0, n);
    binary = body.subarray(n);
  }
  const r = parseOrThrow(restInferSchema, parseJson(headerBytes, "the inference request"));
  let offset = 0;
  const inputs = r.inputs.map((t, i) => {
    const { binary_data_size: size, ...rest } = t.parameters ?? {};
    if (Object.keys(rest).length > 0) {
      throw new SwitchyardError(`inputs[${i}].parameters.${clip(Object.keys(rest)[0]!)} is not supported (allowed: binary_data_size)`, Code.InvalidArgument, { field: `inputs[${i}].parameters` });
    }
    if (size === undefined) {
      if (!t.data) throw new SwitchyardError(`inputs[${i}] has neither data nor parameters.binary_data_size`, Code.InvalidArgument, { field: `inputs[${i}].data` });
      return { name: t.name, datatype: t.datatype, shape: t.shape, values: flatten(t.data) };
    }
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0) {
      throw new SwitchyardError(`inputs[${i}].parameters.binary_data_size ${clip(JSON.stringify(size))} must be an integer >= 0`, Code.InvalidArgument, { field: `inputs[${i}].parameters.binary_data_size` });
    }
    if (!binary || offset + size > binary.byteLength) {
      throw new SwitchyardError(
        `inputs[${i}].parameters.binary_data_size ${size} runs past the binary data (${binary ? binary.byteLength - offset : 0} bytes left; is Inference-Header-Content-Length set?)`,
        Code.InvalidArgument,
        { field: `inputs[${i}].parameters.binary_data_size` },
      );
    }
    const raw = binary.subarray(offset, offset + size);
    offset += size;
    return { name: t.name, datatype: t.datatype, shape: t.shape, raw };
  });
  if (binary && offset !== binary.byteLength) {
    throw new SwitchyardError(`the body carries ${binary.byteLength - offset} bytes of binary data that no input declares`, Code.InvalidArgument, { field: "inputs" });
  }
  return {
    modelName: model,
    modelVersion: version,
    id: r.id ?? "",
    parameters: r.parameters ?? {},
    inputs,
    outputs: r.outputs ?? [],
    rawField: "binary_data",
  };
}

function renderRestInfer(res: ServerResponse, r: KserveResult): void {
  const base = { model_name: r.modelName, model_version: r.modelVersion, ...(r.id ? { id: r.id } : {}), parameters: {} };
  if (!r.options.binaryDataOutput) {
    json(res, 200, { ...base, outputs: [{ name: KSERVE_OUTPUT, datatype: "FP32", shape: r.shape, data: Array.from(r.data) }] });
    return;
  }
  const bytes = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
  const header = Buffer.from(JSON.stringify({ ...base, outputs: [{ name: KSERVE_OUTPUT, datatype: "FP32", shape: r.shape, parameters: { binary_data_size: bytes.byteLength } }] }));
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "inference-header-content-length": String(header.byteLength),
    "content-length": String(header.byteLength + bytes.byteLength),
  });
  res.write(header);
  res.end(bytes);
}

/** The body of POST /v1/images/generations: OpenAI's fields, then Switchyard's (checked by the submit builder). */
const imagesSchema = z.strictObject({
  prompt: z.string({ error: "must be a string: a class name of the model" }),
  model: z.string().optional(),
  n: z.number().int().min(1).max(MAX_IMAGES_PER_REQUEST).optional(),
  size: z.string().optional(),
  response_format: z.string().optional(),
  output_format: z.enum(["png"]).optional(),
  user: z.string().max(256).optional(),
  // Switchyard's own fields (extensions to OpenAI's)
  steps: z.unknown().optional(),
  sampler: z.unknown().optional(),
  guidance: z.unknown().optional(),
  seed: z.unknown().optional(),
  shift: z.unknown().optional(),
  guidance_t_min: z.unknown().optional(),
  guidance_t_max: z.unknown().optional(),
  reuse_threshold: z.unknown().optional(),
  priority: z.number().optional(),
});

/** Class names as users type them: case-insensitive, spaces and underscores as hyphens. */
function normaliseClass(s: string): string {
  return s.trim().toLowerCase().replace(/[\s_]+/g, "-");
}

function openAiError(res: ServerResponse, e: unknown): void {
  const se = SwitchyardError.from(e, Code.Internal);
  const status = Number(se.details.http ?? httpStatusOf(se.code));
  const type = status === 401 ? "authentication_error" : status === 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error";
  json(res, status, { error: { message: se.rawMessage, type, param: se.field ?? null, code: se.details.openai ?? (Code[se.code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() } });
}

export function createHttpHandler(o: HttpApiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const m = o.manifest;
  const g = o.gateway;
  const limit = o.maxBodyBytes ?? DEFAULT_MAX_HTTP_BODY_BYTES;
  const { channels, height, width } = m.image;
  const classNames = m.conditioning.classNames ?? [];
  const size = `${width}x${height * channels}`;

  const kserveError = (res: ServerResponse, e: unknown) => {
    const se = SwitchyardError.from(e, Code.Internal);
    json(res, Number(se.details.http ?? httpStatusOf(se.code)), { error: se.message });
  };

  const configJson = () => ({
    name: m.name,
    platform: "switchyard",
    backend: "switchyard",
    version_policy: { latest: { num_versions: 1 } },
    max_batch_size: KSERVE_MAX_BATCH,
    input: [{ name: KSERVE_INPUT, data_type: "TYPE_INT32", format: "FORMAT_NONE", dims: [1], optional: false }],
    output: [{ name: KSERVE_OUTPUT, data_type: "TYPE_FP32", dims: [channels, height, width] }],
    dynamic_batching: { preferred_batch_size: [], max_queue_delay_microseconds: 0, preserve_ordering: false },
    model_transaction_policy: { decoupled: false },
  });

  const statsJson = () => {
    const s = g.kserve.stats;
    const d = (x: { count: number; ns: number }) => ({ count: x.count, ns: Math.round(x.ns) });
    return {
      model_stats: [
        {
          name: m.name,
          version: m.version,
          last_inference: s.lastInference,
          inference_count: s.inferenceCount,
          execution_count: s.executionCount,
          inference_stats: {
            success: d(s.success), fail: d(s.fail), queue: d(s.queue),
            compute_input: { count: s.computeInfer.count, ns: 0 }, compute_infer: d(s.computeInfer), compute_output: { count: s.computeInfer.count, ns: 0 },
            cache_hit: { count: 0, ns: 0 }, cache_miss: { count: 0, ns: 0 },
          },
          batch_stats: [],
        },
      ],
    };
  };

  async function kserveInfer(req: IncomingMessage, res: ServerResponse, model: string, version: string, caller: ApiToken | undefined): Promise<void> {
    const body = await readBody(req, limit);
    const h = req.headers["inference-header-content-length"];
    const ac = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    const r = await g.kserve.infer(() => parseRestInfer(body, Array.isArray(h) ? h[0] : h, model, version), undefined, ac.signal, req.headers, caller);
    renderRestInfer(res, r);
  }

  async function openAiGenerate(req: IncomingMessage, res: ServerResponse, caller: ApiToken | undefined): Promise<void> {
    const tracked = g.tracker.begin("openai");
    let span: Span | undefined;
    try {
      tracked.admit();
      const body = parseOrThrow(imagesSchema, parseJson(await readBody(req, limit), "the request body"));
      if (body.model !== undefined && body.model !== m.name) {
        throw new SwitchyardError(`model ${JSON.stringify(clip(body.model))} is not served here (serving ${m.name})`, Code.NotFound, { field: "model", details: { openai: "model_not_found" } });
      }
      const wanted = normaliseClass(body.prompt);
      const label = classNames.findIndex((c) => normaliseClass(c) === wanted);
      if (label < 0) {
        throw new SwitchyardError(`prompt ${JSON.stringify(clip(body.prompt))} must be one of the model's class names: ${classNames.join(", ")} (case-insensitive)`, Code.InvalidArgument, { field: "prompt" });
      }
      if (body.size !== undefined && body.size !== size) throw new SwitchyardError(`size ${JSON.stringify(clip(body.size))} must be "${size}" (the model's only size)`, Code.InvalidArgument, { field: "size" });
      if (body.response_format !== undefined && body.response_format !== "b64_json") {
        throw new SwitchyardError(
          `response_format ${JSON.stringify(clip(body.response_format))} must be "b64_json" (images are returned inline; "url" is not served, since URLs break behind load balancers)`,
          Code.InvalidArgument,
          { field: "response_format" },
        );
      }
      const built = buildSubmit(
        { params: { label, count: body.n ?? 1, steps: body.steps, sampler: body.sampler, guidance: body.guidance, shift: body.shift, seed: body.seed, guidance_t_min: body.guidance_t_min, guidance_t_max: body.guidance_t_max, reuse_threshold: body.reuse_threshold }, priority: body.priority ?? 0 },
        m,
      );
      tracked.claim(caller, { work: workOf(built), priority: built.priority, priorityField: "priority" });
      // The caller's traceparent header continues into the scheduler and the workers.
      span = tracer().startSpan("gateway.ImagesGenerate", { kind: SpanKind.SERVER, attributes: { "switchyard.request_id": built.requestId } }, extractContext(req.headers, ROOT_CONTEXT));
      const traceContext = injectContext(trace.setSpan(ROOT_CONTEXT, span));
      const submit = Object.keys(traceContext).length ? { ...built, trace: traceContext } : built;
      const images = await new Promise<Float32Array[]>((resolve, reject) => {
        const handle = startRequest(o.bus, o.subjects, m.name, submit, o.submitTimeoutMs, {
          accepted: () => tracked.accepted(),
          done: (imgs, e) => {
            tracked.succeed(e);
            resolve(imgs);
          },
          error: reject,
        }, o.watch);
        res.on("close", () => {
          if (res.writableFinished) return;
          handle.cancel();
          tracked.cancel();
          reject(new SwitchyardError("the client went away", Code.Canceled));
        });
      });
      json(res, 200, {
        created: Math.floor(Date.now() / 1000),
        data: images.map((x) => ({ b64_json: g.png(x).toString("base64"), revised_prompt: classNames[label] })),
      });
    } catch (e) {
      span?.setStatus({ code: SpanStatusCode.ERROR, message: SwitchyardError.from(e).rawMessage });
      tracked.fail(e);
      throw e;
    } finally {
      span?.end();
    }
  }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    const openAi = path.startsWith("/v1/");
    try {
      const auth = req.headers.authorization;
      const caller = path === "/v2/health/live" || path === "/v2/health/ready" ? undefined : g.authorizeHeader(auth);
      if (openAi) {
        if (path === "/v1/images/generations") {
          if (method !== "POST") throw new SwitchyardError(`${method} ${path}: use POST`, Code.Unimplemented, { details: { http: "405" } });
          await openAiGenerate(req, res, caller);
          return;
        }
        if (path === "/v1/models" && method === "GET") {
          json(res, 200, { object: "list", data: [{ id: m.name, object: "model", created: 0, owned_by: "switchyard" }] });
          return;
        }
        throw new SwitchyardError(`no route ${method} ${clip(path)} (served: POST /v1/images/generations, GET /v1/models)`, Code.NotFound, { details: { openai: "unknown_url" } });
      }
      if (path === "/v2/health/live" || path === "/v2/health/ready") {
        res.writeHead(200, { "content-length": 0 }).end();
        return;
      }
      if (path === "/v2" && method === "GET") {
        json(res, 200, g.kserve.server);
        return;
      }
      if (path === "/v2/models/stats" && method === "GET") {
        json(res, 200, statsJson());
        return;
      }
      const mm = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(ready|config|stats|infer))?$/.exec(path);
      if (mm) {
        const model = decodeURIComponent(mm[1]!);
        const version = mm[2] ? decodeURIComponent(mm[2]) : "";
        const action = mm[3] ?? "";
        if (action === "infer") {
          if (method !== "POST") throw new SwitchyardError(`${method} ${clip(path)}: use POST`, Code.Unimplemented, { details: { http: "405" } });
          await kserveInfer(req, res, model, version, caller);
          return;
        }
        if (method !== "GET") throw new SwitchyardError(`${method} ${clip(path)}: use GET`, Code.Unimplemented, { details: { http: "405" } });
        checkModel(m, model, version, { name: "model", version: "version" });
        if (action === "ready") res.writeHead(200, { "content-length": 0 }).end();
        else if (action === "config") json(res, 200, configJson());
        else if (action === "stats") json(res, 200, statsJson());
        else json(res, 200, g.kserve.metadata());
        return;
      }
      throw new SwitchyardError(
        `no route ${method} ${clip(path)} (served: /v2/health/live|ready, /v2, /v2/models/{model}[/versions/{v}][/ready|/config|/stats|/infer], /v2/models/stats, POST /v1/images/generations)`,
        Code.NotFound,
      );
    } catch (e) {
      if (res.headersSent || res.destroyed) return;
      if (openAi) openAiError(res, e);
      else kserveError(res, e);
    }
  };
  return (req, res) => void route(req, res);
}
