import * as grpc from "@grpc/grpc-js";
import { type SwitchyardClient, createClient } from "@switchyard/client";
import { Code, SwitchyardError, codeToString } from "@switchyard/errors";
import { clientFor, loadContracts } from "@switchyard/proto";
import type { RequestSpec } from "./workload";

/**
 * How requests reach the server: Switchyard's native streaming Generate, or KServe v2
 * ModelInfer (unary) / ModelStreamInfer (one bidirectional stream per load process, as
 * Triton's streaming clients use it). A driver reports the moments the harness times.
 */
export type Protocol = "native" | "kserve" | "kserve-stream";
export const PROTOCOLS: readonly Protocol[] = ["native", "kserve", "kserve-stream"];

export interface Marks {
  /** The server accepted the request (native only). */
  accepted(): void;
  /** A progress event (one per step; native only). */
  progress(): void;
}

export interface Outcome {
  /** "ok", or a gRPC status name ("unavailable", "deadline_exceeded", …). */
  readonly status: string;
  readonly images: number;
  readonly message?: string;
}

export interface Driver {
  send(spec: RequestSpec, marks: Marks, signal: AbortSignal): Promise<Outcome>;
  close(): void;
}

export interface ConnectOptions {
  readonly server: string;
  readonly protocol: Protocol;
  readonly model: string;
  /** TLS: true for system roots, or a CA bundle. */
  readonly tls?: boolean | { readonly ca: Buffer };
  readonly token?: string;
}

export function statusOf(e: unknown): { status: string; message: string } {
  const err = SwitchyardError.from(e);
  return { status: codeToString(err.code), message: err.rawMessage };
}

export function createDriver(o: ConnectOptions): Driver {
  if (o.protocol === "native") return nativeDriver(o);
  if (o.protocol === "kserve" || o.protocol === "kserve-stream") return kserveDriver(o);
  throw new SwitchyardError(`protocol ${JSON.stringify(o.protocol)} is not one of ${PROTOCOLS.join(", ")}`, Code.InvalidArgument, { field: "protocol" });
}

function nativeDriver(o: ConnectOptions): Driver {
  // No retries: a request the server refuses counts as refused.
  const client: SwitchyardClient = createClient({ address: o.server, maxAttempts: 1, ...(o.tls ? { tls: o.tls } : {}), ...(o.token ? { token: o.token } : {}) });
  return {
    async send(spec, marks, signal) {
      try {
        for await (const e of client.generate(
          {
            label: spec.label, count: spec.count, steps: spec.steps, seed: spec.seed, priority: spec.priority,
            ...(spec.sampler !== undefined ? { sampler: spec.sampler } : {}), ...(spec.guidance !== undefined ? { guidance: spec.guidance } : {}),
            ...(spec.guidanceTMin !== undefined ? { guidanceTMin: spec.guidanceTMin } : {}), ...(spec.guidanceTMax !== undefined ? { guidanceTMax: spec.guidanceTMax } : {}),
            ...(spec.reuseThreshold !== undefined ? { reuseThreshold: spec.reuseThreshold } : {}),
            ...(spec.previewInterval > 0 ? { previewInterval: spec.previewInterval } : {}), model: o.model,
          },
          { signal, ...(spec.deadlineMs ? { timeoutMs: spec.deadlineMs } : {}) },
        )) {
          if (e.type === "accepted") marks.accepted();
          else if (e.type === "progress") marks.progress();
          else return { status: "ok", images: e.images.length };
        }
        return { status: "unknown", images: 0, message: "the stream ended without a result" };
      } catch (e) {
        return { ...statusOf(e), images: 0 };
      }
    },
    close: () => client.close(),
  };
}

interface InferResponse {
  id?: string;
  outputs?: { name: string; shape: (number | string)[] }[];
}

function kserveRequest(o: ConnectOptions, spec: RequestSpec, id: string) {
  const labels = Buffer.alloc(spec.count * 4);
  for (let i = 0; i < spec.count; i++) labels.writeInt32LE(spec.label, i * 4);
  return {
    modelName: o.model, id,
    parameters: {
      steps: { int64Param: spec.steps }, seed: { int64Param: spec.seed }, priority: { int64Param: spec.priority },
      ...(spec.sampler !== undefined ? { sampler: { stringParam: spec.sampler } } : {}), ...(spec.guidance !== undefined ? { guidance: { doubleParam: spec.guidance } } : {}),
      ...(spec.guidanceTMin !== undefined ? { guidance_t_min: { doubleParam: spec.guidanceTMin } } : {}), ...(spec.guidanceTMax !== undefined ? { guidance_t_max: { doubleParam: spec.guidanceTMax } } : {}),
      ...(spec.reuseThreshold !== undefined ? { reuse_threshold: { doubleParam: spec.reuseThreshold } } : {}),
      ...(spec.deadlineMs ? { timeout: { int64Param: spec.deadlineMs * 1000 } } : {}),
    },
    inputs: [{ name: "LABEL", datatype: "INT32", shape: [spec.count, 1] }],
    outputs: [{ name: "IMAGE" }],
    rawInputContents: [labels],
  };
}

function kserveDriver(o: ConnectOptions): Driver {
  const Ctor = clientFor(loadContracts().inference, "GRPCInferenceService");
  let creds = o.tls ? grpc.credentials.createSsl(typeof o.tls === "object" ? o.tls.ca : null) : grpc.credentials.createInsecure();
  const md = new grpc.Metadata();
  if (o.token) {
    if (o.tls) creds = grpc.credentials.combineChannelCredentials(creds as grpc.ChannelCredentials, grpc.credentials.createFromMetadataGenerator((_p, cb) => cb(null, md)));
    md.set("authorization", `Bearer ${o.token}`);
  }
  const stub = new Ctor(o.server, creds) as unknown as Record<string, (...a: unknown[]) => unknown>;
  const images = (r: InferResponse) => Number(r.outputs?.[0]?.shape?.[0] ?? 0);
  let next = 0;
  // ModelStreamInfer: one stream, responses matched to requests by id.
  type Pending = { resolve: (o: Outcome) => void };
  const pending = new Map<string, Pending>();
  let stream: grpc.ClientDuplexStream<unknown, { errorMessage?: string; inferResponse?: InferResponse }> | undefined;
  const openStream = () => {
    const s = (stub.ModelStreamInfer as (m: grpc.Metadata) => typeof stream)(md)!;
    s.on("data", (d) => {
      const id = d.inferResponse?.id ?? "";
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      p.resolve(d.errorMessage ? { status: /^\[(\w+)\]/.exec(d.errorMessage)?.[1] ?? "unknown", images: 0, message: d.errorMessage } : { status: "ok", images: images(d.inferResponse!) });
    });
    const fail = (e: unknown) => {
      if (stream === s) stream = undefined;
      const st = statusOf(e);
      for (const [, p] of pending) p.resolve({ ...st, images: 0 });
      pending.clear();
    };
    s.on("error", fail);
    s.on("end", () => fail(new SwitchyardError("the stream ended", Code.Unavailable)));
    return s;
  };
  return {
    send(spec, _marks, signal) {
      const id = `lt-${process.pid}-${++next}`;
      const req = kserveRequest(o, spec, id);
      if (o.protocol === "kserve-stream") {
        return new Promise<Outcome>((resolve) => {
          pending.set(id, { resolve });
          (stream ??= openStream()).write(req);
          signal.addEventListener("abort", () => pending.get(id) && (pending.delete(id), resolve({ status: "canceled", images: 0 })), { once: true });
        });
      }
      return new Promise<Outcome>((resolve) => {
        const call = (stub.ModelInfer as (r: unknown, m: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: InferResponse) => void) => grpc.ClientUnaryCall)(
          req, md, spec.deadlineMs ? { deadline: Date.now() + spec.deadlineMs } : {},
          (e, r) => resolve(e ? { status: codeToString(e.code as number as Code), images: 0, message: e.details } : { status: "ok", images: images(r) }),
        );
        signal.addEventListener("abort", () => call.cancel(), { once: true });
      });
    },
    close() {
      stream?.end();
      (stub as unknown as grpc.Client).close();
    },
  };
}
