import type { RequestEvent, SubmitMessage } from "@switchyard/contract";
import { type Manifest, checkResolvedParams } from "@switchyard/manifest";
import { gaussianNoise, guidedEvals } from "@switchyard/sampler";
import { type Context, ROOT_CONTEXT, type Span, SpanKind, extractContext, trace, tracer } from "@switchyard/telemetry";
import { type RequestState, admit } from "./policy";

/** A request the scheduler holds: its sampler state and what it tracks about it between ticks. */
export interface Live {
  state: RequestState;
  readonly msg: SubmitMessage;
  computeMs: number;
  /** Wall time of the ticks it took part in, ms (each tick once). */
  tickMs: number;
  cancelled: boolean;
  /** x̂0 = x_t − t·v of each image at its latest eval (previews). */
  readonly preview: (Float32Array | undefined)[];
  /** Assignments of its latest eval served by each worker (affinity homing). */
  affinity: Map<string, number> | undefined;
  /** Experts (global ids) of its latest eval: the prediction for the next (route-aware batching). */
  predicted: Set<number> | undefined;
  /** Ticks route-aware grouping held it back although its priority would have run it. */
  waited: number;
  /** Its span here (admission to end), continuing the gateway's trace; no-op when tracing is off. */
  span?: Span;
  ctx?: Context;
}

/**
 * A submitted request as the scheduler holds it: parameters checked against the model
 * (resolved at the gateway; a bus client may not be one), its images' seeded noise, and
 * its span continuing the caller's trace (from the NATS headers, or the message's `trace`).
 */
export function admitRequest(msg: SubmitMessage, headers: Readonly<Record<string, string>>, manifest: Manifest, seq: number, nowMs: number): Live {
  const p = checkResolvedParams(msg.params, manifest);
  const { channels, height, width } = manifest.image;
  const noise = Array.from({ length: p.count }, (_, i) => gaussianNoise(p.seed, i, channels * height * width));
  const state = admit(
    { id: msg.requestId, params: { sampler: p.sampler, steps: p.steps, shift: p.shift }, label: p.label, guidance: p.guidance, ...(p.guidanceInterval ? { guidanceInterval: p.guidanceInterval } : {}), ...(p.reuseThreshold ? { reuseThreshold: p.reuseThreshold } : {}), priority: msg.priority, deadlineMs: msg.deadlineMs ?? undefined, noise },
    seq,
    nowMs,
  );
  const carrier = headers.traceparent ? headers : msg.trace;
  const parent = carrier ? extractContext(carrier as Record<string, string>, ROOT_CONTEXT) : ROOT_CONTEXT;
  const span = tracer().startSpan("scheduler.request", { kind: SpanKind.CONSUMER, attributes: { "switchyard.request_id": msg.requestId, "switchyard.images": p.count, "switchyard.steps": p.steps } }, parent);
  return { state, msg, computeMs: 0, tickMs: 0, cancelled: false, preview: new Array(p.count), affinity: undefined, predicted: undefined, waited: 0, span, ctx: trace.setSpan(parent, span) };
}

/** The `done` event of a finished request. */
export function doneEvent(r: Live, nowMs: number): Extract<RequestEvent, { type: "done" }> {
  const started = r.state.startedAtMs ?? nowMs;
  return {
    type: "done",
    queueMs: started - r.state.acceptedAtMs,
    computeMs: r.computeMs,
    tickMs: r.tickMs,
    totalMs: nowMs - r.state.acceptedAtMs,
    evals: r.state.images[0]!.sampler.evals,
    guidedEvals: guidedEvals(r.state.spec.params, r.state.spec.guidance, r.state.spec.guidanceInterval),
    ...(r.state.spec.reuseThreshold ? reuseCounts(r) : {}),
    seed: r.msg.params.seed,
  };
}

/** Residual reuse over all of a request's images: evaluations that reused, and that ran every block. */
function reuseCounts(r: Live): { reusedEvals: number; fullEvals: number } {
  const reusedEvals = r.state.images.reduce((s, i) => s + (i.reusedEvals ?? 0), 0);
  const all = r.state.images.reduce((s, i) => s + i.sampler.evals, 0);
  return { reusedEvals, fullEvals: all - reusedEvals };
}

/** `{ traceId }` of a request's span when it is being traced. */
export function traceIdOf(r: Live): { traceId?: string } {
  const c = r.span?.spanContext();
  return c && c.traceFlags & 1 ? { traceId: c.traceId } : {};
}
