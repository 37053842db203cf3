import * as grpc from "@grpc/grpc-js";
import { Code, SwitchyardError } from "@switchyard/errors";
import { clientFor, fromGrpcError, loadContracts } from "@switchyard/proto";

export type SamplerName = "euler" | "heun" | "pc";

export interface GenerateParams {
  /** Class label; omit for unconditional. */
  label?: number;
  count?: number;
  steps?: number;
  sampler?: SamplerName;
  guidance?: number;
  /** Guidance only for evaluations at t in [guidanceTMin, guidanceTMax] (t: 1 = noise, 0 = image); one conditional row elsewhere. */
  guidanceTMin?: number;
  guidanceTMax?: number;
  /**
   * Residual reuse, in (0, 1]: an evaluation whose first block's residual is within this
   * (relative L1) of its forecast from the image's last two full evaluations skips the
   * later blocks (their residual forecast the same way). Off when unset.
   */
  reuseThreshold?: number;
  shift?: number;
  seed?: number;
  priority?: number;
  /** Receive an x̂0 preview every N steps. */
  previewInterval?: number;
  requestId?: string;
  model?: string;
}

export interface Image {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** float32 [C*H*W] */
  readonly data: Float32Array;
  /** 8-bit PNG of the same image */
  readonly png: Uint8Array;
}

export type GenerateEvent =
  | { readonly type: "accepted"; readonly requestId: string; readonly queuePosition: number }
  | { readonly type: "progress"; readonly step: number; readonly steps: number; readonly t: number; readonly previews: readonly Image[] }
  | {
      readonly type: "result";
      readonly requestId: string;
      readonly images: readonly Image[];
      readonly seed: number;
      /**
       * modelEvals: evaluations per image; guidedEvals: of those, with classifier-free guidance (two rows);
       * reusedEvals / fullEvals: with reuseThreshold, over all images, evaluations that reused the cached residual / ran every block (0 without).
       */
      readonly timings: Timings;
    };

export interface Timings {
  readonly queueMs: number;
  readonly computeMs: number;
  readonly totalMs: number;
  readonly modelEvals: number;
  readonly guidedEvals: number;
  readonly reusedEvals: number;
  readonly fullEvals: number;
}

export interface ClientOptions {
  /** host:port of a gateway. */
  readonly address: string;
  /** TLS: true for system roots, or a CA bundle (PEM). */
  readonly tls?: boolean | { readonly ca: Buffer };
  /** API token sent as `authorization: Bearer <token>`. */
  readonly token?: string;
  /** Attempts for UNAVAILABLE before anything was received (default 3). */
  readonly maxAttempts?: number;
  /** First retry back-off, doubled each time (default 100 ms). */
  readonly retryBackoffMs?: number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** Deadline relative to now. */
  readonly timeoutMs?: number;
  /** W3C trace context to continue (`00-<trace id>-<span id>-01`): the request's spans join that trace. */
  readonly traceparent?: string;
}

export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_RETRY_BACKOFF_MS = 100;

const SAMPLER_ENUM: Record<SamplerName, string> = { euler: "SAMPLER_EULER", heun: "SAMPLER_HEUN", pc: "SAMPLER_PC" };

interface WireImage {
  channels: number;
  height: number;
  width: number;
  data: Buffer;
  png: Buffer;
}

function image(w: WireImage): Image {
  const data = new Float32Array(w.data.byteLength / 4);
  new Uint8Array(data.buffer).set(w.data);
  return { channels: w.channels, height: w.height, width: w.width, data, png: new Uint8Array(w.png) };
}

export interface SwitchyardClient {
  /** Streams accepted → progress* → result; throws SwitchyardError on failure. */
  generate(params: GenerateParams, options?: CallOptions): AsyncIterable<GenerateEvent>;
  /** Convenience: runs generate() to the end and returns the result event. */
  generateImages(params: GenerateParams, options?: CallOptions): Promise<Extract<GenerateEvent, { type: "result" }>>;
  cancel(requestId: string): Promise<boolean>;
  listModels(): Promise<unknown[]>;
  close(): void;
}

class Client implements SwitchyardClient {
  private readonly stub: grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  private readonly md: grpc.Metadata;
  constructor(private readonly o: ClientOptions) {
    const Ctor = clientFor(loadContracts().switchyard, "Switchyard");
    let creds = o.tls ? grpc.credentials.createSsl(typeof o.tls === "object" ? o.tls.ca : null) : grpc.credentials.createInsecure();
    if (o.token && o.tls) {
      creds = grpc.credentials.combineChannelCredentials(
        creds,
        grpc.credentials.createFromMetadataGenerator((_p, cb) => {
          const md = new grpc.Metadata();
          md.set("authorization", `Bearer ${o.token}`);
          cb(null, md);
        }),
      );
    }
    this.stub = new Ctor(o.address, creds, { "grpc.max_receive_message_length": 64 * 1024 * 1024 }) as never;
    this.md = new grpc.Metadata();
    // Without TLS, call credentials are not sent by grpc-js: attach the token as metadata.
    if (o.token && !o.tls) this.md.set("authorization", `Bearer ${o.token}`);
  }

  async *generate(params: GenerateParams, options: CallOptions = {}): AsyncIterable<GenerateEvent> {
    const req = {
      model: params.model ?? "",
      label: params.label,
      count: params.count,
      steps: params.steps,
      sampler: params.sampler ? SAMPLER_ENUM[params.sampler] ?? params.sampler : "SAMPLER_UNSPECIFIED",
      guidance: params.guidance,
      guidanceTMin: params.guidanceTMin,
      guidanceTMax: params.guidanceTMax,
      reuseThreshold: params.reuseThreshold,
      shift: params.shift,
      seed: params.seed,
      priority: params.priority ?? 0,
      previewInterval: params.previewInterval ?? 0,
      requestId: params.requestId ?? "",
    };
    const attempts = this.o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    let backoff = this.o.retryBackoffMs ?? DEFAULT_RETRY_BACKOFF_MS;
    const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : undefined;
    for (let attempt = 1; ; attempt++) {
      if (options.signal?.aborted) throw new SwitchyardError("generate was aborted", Code.Canceled);
      let received = false;
      let md = this.md;
      if (options.traceparent) {
        md = this.md.clone();
        md.set("traceparent", options.traceparent);
      }
      const call = (this.stub.Generate as (r: unknown, md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<Record<string, unknown>>)(
        req,
        md,
        deadline !== undefined ? { deadline } : {},
      );
      const onAbort = () => call.cancel();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const ev of call) {
          received = true;
          const e = ev as { event?: string; accepted?: { requestId: string; queuePosition: number }; progress?: { step: number; steps: number; t: number; preview: WireImage[] }; result?: { requestId: string; images: WireImage[]; seed: number; timings: Timings } };
          if (e.event === "accepted" && e.accepted) yield { type: "accepted", requestId: e.accepted.requestId, queuePosition: e.accepted.queuePosition };
          else if (e.event === "progress" && e.progress) yield { type: "progress", step: e.progress.step, steps: e.progress.steps, t: e.progress.t, previews: e.progress.preview.map(image) };
          else if (e.event === "result" && e.result) yield { type: "result", requestId: e.result.requestId, images: e.result.images.map(image), seed: Number(e.result.seed), timings: e.result.timings };
        }
        return;
      } catch (err) {
        if (options.signal?.aborted) throw new SwitchyardError("generate was aborted", Code.Canceled, { cause: err });
        const se = fromGrpcError(err);
        if (se.code !== Code.Unavailable || received || attempt >= attempts) throw se;
        await new Promise((r) => setTimeout(r, backoff));
        backoff *= 2;
      } finally {
        options.signal?.removeEventListener("abort", onAbort);
      }
    }
  }

  async generateImages(params: GenerateParams, options?: CallOptions) {
    for await (const e of this.generate(params, options)) if (e.type === "result") return e;
    throw new SwitchyardError("stream ended without a result", Code.Internal);
  }

  cancel(requestId: string): Promise<boolean> {
    return new Promise((resolve, reject) =>
      (this.stub.Cancel as (r: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: { cancelled: boolean }) => void) => void)({ requestId }, this.md, (e, r) =>
        e ? reject(fromGrpcError(e)) : resolve(!!r?.cancelled),
      ),
    );
  }

  listModels(): Promise<unknown[]> {
    return new Promise((resolve, reject) =>
      (this.stub.ListModels as (r: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: { models: unknown[] }) => void) => void)({}, this.md, (e, r) =>
        e ? reject(fromGrpcError(e)) : resolve(r?.models ?? []),
      ),
    );
  }

  close(): void {
    this.stub.close();
  }
}

export function createClient(options: ClientOptions): SwitchyardClient {
  return new Client(options);
}
