import type { Json } from "@switchyard/bus";

/**
 * Messages between gateway and scheduler over the bus (JSON; float32 tensors as
 * base64 of their little-endian bytes — small: one 28×28 image is 3 KiB).
 */
export interface SubmitMessage {
  readonly requestId: string;
  readonly model: string;
  readonly params: {
    readonly label: number | null;
    readonly count: number;
    readonly steps: number;
    readonly sampler: string;
    readonly guidance: number;
    readonly shift: number;
    readonly seed: number;
  };
  readonly priority: number;
  /** Absolute, ms since epoch; null = none. */
  readonly deadlineMs: number | null;
  /** Preview every N completed steps; 0 = never. */
  readonly previewInterval: number;
  /** W3C trace context of the gateway's span (`traceparent`, `tracestate`), when tracing. */
  readonly trace?: Readonly<Record<string, string>>;
}

export interface SubmitReply {
  readonly accepted: true;
  readonly queuePosition: number;
}

export type RequestEvent =
  | { readonly type: "progress"; readonly step: number; readonly steps: number; readonly t: number; readonly previews?: string[] }
  | { readonly type: "image"; readonly index: number; readonly data: string }
  | {
      readonly type: "done";
      readonly queueMs: number;
      /** Its share of the ticks it was in (tick time ÷ rows, summed). */
      readonly computeMs: number;
      /** Wall time of the ticks it was in, each tick counted once (Triton's "compute infer"). */
      readonly tickMs?: number;
      readonly totalMs: number;
      readonly evals: number;
      readonly seed: number;
    }
  | { readonly type: "error"; readonly code: number; readonly message: string };

export function f32ToBase64(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
}

export function base64ToF32(s: string): Float32Array {
  const b = Buffer.from(s, "base64");
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

export function asJson<T>(v: T): Json {
  return v as unknown as Json;
}
