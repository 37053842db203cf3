import { z } from "zod";
import type { CacheFigures, WorkerTraffic } from "@switchyard/proto";

/**
 * The payload of every bus subject (subjects.ts), as zod schemas. Senders build the
 * inferred types; receivers parse with the schema once (channels.ts), so that a
 * malformed or forged message is refused with the field it got wrong instead of being
 * used half-typed. Objects are not strict: a newer sender's extra fields are dropped,
 * so roles can be upgraded one at a time.
 */

const count = z.number().int().nonnegative();
const ms = z.number().nonnegative();

/** Longest client request id (echoed in events and errors). */
export const MAX_REQUEST_ID_CHARS = 128;
/** Longest model name a subject carries. */
export const MAX_MODEL_NAME_CHARS = 128;
/** Most images one request may ask for. */
export const MAX_IMAGES_PER_REQUEST = 256;

/**
 * Generation parameters as the gateway resolved them (defaults applied, the model's
 * bounds checked): the scheduler takes them as they are. `label` is the conditioning
 * label the model sees (its null label for an unconditional request), `guidance` the
 * scale applied (1 = none, as for every unconditional request).
 */
export const resolvedParams = z.object({
  label: count,
  /** The client asked for a class (false: unconditional). */
  conditional: z.boolean(),
  count: z.number().int().min(1).max(MAX_IMAGES_PER_REQUEST),
  steps: z.number().int().positive(),
  sampler: z.string().min(1).max(32),
  guidance: z.number().nonnegative().finite(),
  shift: z.number().positive().finite(),
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** Guidance only for evaluations at t in [tMin, tMax]; absent: every evaluation. */
  guidanceInterval: z.object({ tMin: z.number().min(0).max(1), tMax: z.number().min(0).max(1) }).optional(),
  /** Residual reuse threshold (relative change of the first block's residual), (0, 1]; absent: off. */
  reuseThreshold: z.number().positive().max(1).optional(),
});
export type ResolvedParams = z.output<typeof resolvedParams>;

/** gateway → scheduler (`intake`, request/reply): one accepted request. */
export const submitMessage = z.object({
  requestId: z.string().min(1).max(MAX_REQUEST_ID_CHARS),
  model: z.string().min(1).max(MAX_MODEL_NAME_CHARS),
  params: resolvedParams,
  priority: z.number().int(),
  /** Absolute, ms since epoch; null = none. */
  deadlineMs: z.number().nullable(),
  /** Preview every N completed steps; 0 = never. */
  previewInterval: count,
  /** W3C trace context of the gateway's span, when tracing and the bus carries no headers. */
  trace: z.record(z.string(), z.string()).optional(),
});
export type SubmitMessage = z.output<typeof submitMessage>;

/** The scheduler stored the request in the request journal before answering. */
export const submitReply = z.object({ accepted: z.literal(true), queuePosition: count });
export type SubmitReply = z.output<typeof submitReply>;

/** scheduler → gateway (`events.<requestId>`). */
export const requestEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("progress"), step: count, steps: count, t: z.number(), previews: z.array(z.string()).optional() }),
  z.object({ type: z.literal("image"), index: count, data: z.string() }),
  z.object({
    type: z.literal("done"),
    queueMs: ms,
    /** Its share of the ticks it was in (tick time ÷ rows, summed). */
    computeMs: ms,
    /** Wall time of the ticks it was in, each tick counted once (Triton's "compute infer"). */
    tickMs: ms.optional(),
    totalMs: ms,
    evals: count,
    /** Of the evaluations per image, those with guidance (absent from schedulers before it). */
    guidedEvals: count.optional(),
    /** Residual reuse, over all its images: evaluations that reused the cached residual and that ran every block (only when asked for). */
    reusedEvals: count.optional(),
    fullEvals: count.optional(),
    seed: count,
  }),
  z.object({ type: z.literal("error"), code: z.number().int().min(1).max(16), message: z.string() }),
  /** The answer to a `resend` for a request the scheduler holds: it is queued (step 0) or running. */
  z.object({ type: z.literal("status"), step: count, steps: count }),
]);
export type RequestEvent = z.output<typeof requestEvent>;
export type ProgressEvent = Extract<RequestEvent, { type: "progress" }>;
export type DoneEvent = Extract<RequestEvent, { type: "done" }>;

/**
 * gateway → schedulers (`resend`): a request's stream has been silent. The scheduler
 * holding it answers with a `status` event; one that finished it lately sends its
 * final events again (they may have been lost while NATS was away).
 */
export const resendMessage = z.object({ requestId: z.string().min(1).max(MAX_REQUEST_ID_CHARS) });
export type ResendMessage = z.output<typeof resendMessage>;

/**
 * What the request journal stores per accepted request (KV bucket `<p>-requests`, key
 * `<group>.<request id token>`): written before the scheduler acknowledges the request,
 * deleted once its final event is sent. A restarted scheduler resumes every record of
 * its group from step 0 (the noise is seeded, so the result is the same).
 */
export const journalRecord = z.object({
  submit: submitMessage,
  /** The request's NATS headers (its trace context). */
  headers: z.record(z.string().max(64), z.string().max(1024)).optional(),
  acceptedAtMs: ms,
});
export type JournalRecord = z.output<typeof journalRecord>;

/**
 * The journal bucket's age limit: a record (or the marker its removal leaves — one per
 * request) older than a day is dropped by JetStream, so the bucket does not grow with
 * every request ever served. A request held longer than this is not resumed after a crash.
 */
export const REQUEST_JOURNAL_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** gateway → schedulers (`cancel`). */
export const cancelMessage = z.object({ requestId: z.string().min(1).max(MAX_REQUEST_ID_CHARS) });
export type CancelMessage = z.output<typeof cancelMessage>;

export const cacheFigures = z.object({
  policy: z.string(), budgetBytes: count, residentBytes: count, residentExperts: count, ticks: count, layerRuns: count, needed: count, hits: count,
  misses: count, loads: count, bytesLoaded: count, prefetchLoads: count, wastedBytes: count, stallMs: ms, demandLoadMs: ms, predicted: count, predictedHits: count,
}) satisfies z.ZodType<CacheFigures>;

export const workerTraffic = z.object({
  ticks: count, rowsSent: count, rowsReceived: count, bytesSent: count, bytesReceived: count, expertRows: count, cache: cacheFigures.optional(),
}) satisfies z.ZodType<WorkerTraffic>;

const workerId = z.string().min(1).max(253);

/** workers → their group's scheduler and every gateway (`workers.<g>.heartbeat`), every second. */
export const heartbeat = z.object({
  workerId,
  /** Its data-plane address, host:port. */
  address: z.string().min(1).max(300),
  /** Its TCP row exchange, host:port (absent: peers exchange rows with it over gRPC). */
  exchangeAddress: z.string().min(1).max(300).optional(),
  /** Traffic totals since the worker started. */
  traffic: workerTraffic.optional(),
  /** Distinguishes a process from an earlier one under the same id (a restarted pod). */
  incarnation: z.string().max(64).optional(),
});
export type Heartbeat = z.output<typeof heartbeat>;

/** A worker is gone (`workers.<g>.leave`). */
export const leaveMessage = z.object({ workerId });
export type LeaveMessage = z.output<typeof leaveMessage>;

/** A stopping worker → its scheduler (`workers.<g>.drain`, request/reply): answered once a plan without it is in force. */
export const drainRequest = z.object({ workerId, incarnation: z.string().max(64).optional() });
export type DrainRequest = z.output<typeof drainRequest>;
export const drainReply = z.object({ workerId, planVersion: count, waitedMs: ms });
export type DrainReply = z.output<typeof drainReply>;

/** scheduler → gateways (`metrics.scheduler.<g>`), every second. */
export const schedulerStats = z.object({
  queued: count,
  ticks: count,
  completed: count,
  failed: count,
  lastTickRows: count,
  lastTickMs: ms,
  /** Image evals computed, and sampler steps completed (per request). */
  evals: count,
  steps: count,
  workers: count,
  /** Warm-up ticks run (included in `ticks`). */
  warmUpTicks: count,
});
export type SchedulerStats = z.output<typeof schedulerStats>;

/** The plan in force for a model (KV `planInForceKey`), written by its group's scheduler at every plan change. */
export const planInForce = z.object({
  version: count,
  layers: z.number().int().positive(),
  experts: z.number().int().positive(),
  /** Owner worker id per global expert. */
  owners: z.array(z.string()),
  /** The workers it is in force over. */
  workers: z.array(z.string()),
  replicas: z.array(z.array(z.string())).optional(),
  appliedAt: z.string(),
  /** Each worker's traffic totals when the plan came into force (`placement status` reports since then). */
  trafficAtApply: z.record(z.string(), workerTraffic.omit({ cache: true })),
});
export type PlanInForce = z.output<typeof planInForce>;
