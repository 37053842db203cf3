import type { z } from "zod";
import { parseOrThrow } from "@switchyard/config";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { Bus, Json, Subscription } from "./bus";
import {
  type CancelMessage, type ResendMessage, type DrainReply, type DrainRequest, type Heartbeat, type LeaveMessage, type RequestEvent, type SchedulerStats, type SubmitMessage, type SubmitReply,
  cancelMessage, resendMessage, drainReply, drainRequest, heartbeat, leaveMessage, requestEvent, schedulerStats, submitMessage, submitReply,
} from "./messages";
import type { Subjects } from "./subjects";

/**
 * Every bus subject paired with the schema of its payload. Use the functions below
 * rather than the bus directly: a receiver gets a parsed, typed message or — for a
 * message that does not fit its schema — nothing (subscriptions: `onInvalid` hears of
 * it) or INVALID_ARGUMENT naming the field (request/reply: the caller gets it).
 */
export interface Topic<T> {
  readonly subject: string;
  readonly schema: z.ZodType<T>;
}

export interface Service<Req, Rep> {
  readonly subject: string;
  readonly request: z.ZodType<Req>;
  readonly reply: z.ZodType<Rep>;
}

export interface Channels {
  intake(model: string): Service<SubmitMessage, SubmitReply>;
  events(requestId: string): Topic<RequestEvent>;
  readonly cancel: Topic<CancelMessage>;
  readonly resend: Topic<ResendMessage>;
  readonly heartbeat: Topic<Heartbeat>;
  readonly leave: Topic<LeaveMessage>;
  readonly drain: Service<DrainRequest, DrainReply>;
  readonly schedulerMetrics: Topic<SchedulerStats>;
  /** Every group's (gateways); the group is `groupOf(subject)`. */
  readonly anyHeartbeat: Topic<Heartbeat>;
  readonly anyLeave: Topic<LeaveMessage>;
  readonly anySchedulerMetrics: Topic<SchedulerStats>;
}

export function channels(s: Subjects): Channels {
  return {
    intake: (model) => ({ subject: s.intake(model), request: submitMessage, reply: submitReply }),
    events: (id) => ({ subject: s.events(id), schema: requestEvent }),
    cancel: { subject: s.cancel, schema: cancelMessage },
    resend: { subject: s.resend, schema: resendMessage },
    heartbeat: { subject: s.heartbeat, schema: heartbeat },
    leave: { subject: s.leave, schema: leaveMessage },
    drain: { subject: s.drain, request: drainRequest, reply: drainReply },
    schedulerMetrics: { subject: s.schedulerMetrics, schema: schedulerStats },
    anyHeartbeat: { subject: s.anyHeartbeat, schema: heartbeat },
    anyLeave: { subject: s.anyLeave, schema: leaveMessage },
    anySchedulerMetrics: { subject: s.anySchedulerMetrics, schema: schedulerStats },
  };
}

/** A message as the bus carries it (the types above are JSON by construction). */
function toJson<T>(msg: T): Json {
  return msg as Json;
}

/** Parses a payload against a schema: the message, or INVALID_ARGUMENT naming the field (`what` names the message). */
export function decode<T>(schema: z.ZodType<T>, payload: unknown, what: string): T {
  return parseOrThrow(schema, payload, { what });
}

export function publish<T>(bus: Bus, topic: Topic<T>, msg: T): void {
  bus.publish(topic.subject, toJson(msg));
}

/**
 * Subscribes with parsing: `handler` gets only messages that fit the topic's schema;
 * others go to `onInvalid` (default: dropped). A handler that throws is reported there
 * too, so one bad message cannot break a subscription.
 */
export function subscribe<T>(bus: Bus, topic: Topic<T>, handler: (msg: T, subject: string) => void, onInvalid?: (e: SwitchyardError, subject: string) => void): Subscription {
  return bus.subscribe(topic.subject, (payload, subject) => {
    let msg: T;
    try {
      msg = decode(topic.schema, payload, `message on ${subject}`);
    } catch (e) {
      onInvalid?.(SwitchyardError.from(e, Code.InvalidArgument), subject);
      return;
    }
    try {
      handler(msg, subject);
    } catch (e) {
      onInvalid?.(SwitchyardError.from(e, Code.Internal), subject);
    }
  });
}

/** Serves a request/reply subject: requests that do not fit get INVALID_ARGUMENT naming the field. */
export function serve<Req, Rep>(bus: Bus, service: Service<Req, Rep>, handler: (req: Req, headers: Readonly<Record<string, string>>) => Promise<Rep>, options?: { queue?: string }): Subscription {
  return bus.serve(service.subject, async (payload, headers) => toJson(await handler(decode(service.request, payload, `request on ${service.subject}`), headers)), options);
}

/** One request, its reply parsed (a reply that does not fit: INTERNAL, the responder is broken). */
export async function request<Req, Rep>(bus: Bus, service: Service<Req, Rep>, req: Req, options?: { timeoutMs?: number; headers?: Readonly<Record<string, string>> }): Promise<Rep> {
  const reply = await bus.request(service.subject, toJson(req), options);
  try {
    return decode(service.reply, reply, `reply on ${service.subject}`);
  } catch (e) {
    throw new SwitchyardError(SwitchyardError.from(e).rawMessage, Code.Internal, { cause: e });
  }
}
