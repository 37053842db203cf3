import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Every NATS subject and KV key Switchyard uses, in one place. `prefix` isolates
 * clusters sharing one NATS server (tests use a random one).
 *
 *   <p>.intake.<model>          gateway → scheduler, request/reply, queue group "schedulers"
 *   <p>.events.<requestId>      scheduler → gateway: progress, images, done, error
 *   <p>.cancel                  gateway → schedulers: cancel a request
 *   <p>.resend                  gateway → schedulers: a request's stream is silent; its
 *                               holder answers with a status event (or its final events again)
 *   <p>.workers.<g>.heartbeat   workers → their group's scheduler: membership and load
 *   <p>.workers.<g>.drain       a stopping worker → its scheduler (request/reply): answered
 *                               once a plan without it is in force, so it can stop serving
 *   <p>.workers.<g>.leave       a worker is gone (peers and gateways forget it)
 *   <p>.metrics.scheduler.<g>   scheduler → gateways: queue and tick figures (every second)
 *   KV bucket <p>-plans, key plan.<g>.<model>: an operator's placement plan (PlanFile);
 *                               key plan.<g>.<model>.in-force: the plan in force (PlanInForce)
 *   KV bucket <p>-requests, key <g>.<request id token>: the request journal (JournalRecord),
 *                               every accepted request until its final event is sent
 *
 * The payload of each is in messages.ts, paired with its subject in channels.ts.
 *
 * <g> is the serving group: one copy of the model split over its workers, driven by its
 * own scheduler. Every group's scheduler takes requests from the one intake queue group,
 * so gateways spread work over groups; heartbeats, leaves and plans stay in a group.
 */
export const DEFAULT_SUBJECT_PREFIX = "sy";
export const SCHEDULER_QUEUE_GROUP = "schedulers";
export const DEFAULT_SERVING_GROUP = "default";

export interface Subjects {
  intake(model: string): string;
  events(requestId: string): string;
  readonly cancel: string;
  readonly resend: string;
  /** The serving group these subjects are for. */
  readonly group: string;
  readonly heartbeat: string;
  readonly leave: string;
  /** A worker asks its group's scheduler to plan without it (request/reply). */
  readonly drain: string;
  readonly schedulerMetrics: string;
  /** Wildcards over every group (gateways): the group is token 2 (`groupOf`). */
  readonly anyHeartbeat: string;
  readonly anyLeave: string;
  readonly anySchedulerMetrics: string;
  readonly plansBucket: string;
  /** The request journal's KV bucket. */
  readonly requestsBucket: string;
  /** A request's journal key in `group` (default: these subjects' group; "*" = any group's). */
  journalKey(requestId: string, group?: string): string;
  /** Every journal key of these subjects' group. */
  readonly journalKeys: string;
  /** An operator's plan for a model (`switchyard placement apply`). */
  planKey(model: string): string;
  /** The plan in force for a model, written by its group's scheduler. */
  planInForceKey(model: string): string;
}

/** Strings that stand for themselves in a subject token or KV key. */
const PLAIN_TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * A client string (request id, model name) as one NATS subject token and KV key part.
 * Injective, so two ids never share a subject: plain ids ([A-Za-z0-9_-], UUIDs among
 * them) stand for themselves, anything else becomes "=" + base64url of its UTF-8
 * bytes (plain ids never contain "=", and "=" and base64url are valid in both NATS
 * subjects and KV keys). Before, '.', '*', '>' and whitespace all became '_', so
 * `a.b` and `a_b` shared one events subject and one client could read another's images.
 */
export function token(s: string): string {
  return PLAIN_TOKEN.test(s) ? s : `=${Buffer.from(s, "utf8").toString("base64url")}`;
}

/** The serving group a per-group subject (heartbeat, leave, scheduler metrics) belongs to. */
export function groupOf(subject: string): string {
  const parts = subject.split(".");
  return parts[1] === "metrics" ? (parts[3] ?? DEFAULT_SERVING_GROUP) : (parts[2] ?? DEFAULT_SERVING_GROUP);
}

/** Group names are one subject token and part of Kubernetes object names: lower-case DNS labels. */
const GROUP_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export function subjects(prefix = DEFAULT_SUBJECT_PREFIX, group = DEFAULT_SERVING_GROUP): Subjects {
  // The prefix also names the KV bucket, whose names allow only [A-Za-z0-9_-].
  if (!PLAIN_TOKEN.test(prefix)) {
    throw new SwitchyardError(`subjectPrefix ${JSON.stringify(prefix.slice(0, 64))} must be letters, digits, '_' or '-'`, Code.InvalidArgument, { field: "subjectPrefix" });
  }
  if (!GROUP_NAME.test(group)) {
    throw new SwitchyardError(`group ${JSON.stringify(group.slice(0, 64))} must be 1-32 lower-case letters, digits or '-', starting and ending with a letter or digit`, Code.InvalidArgument, { field: "group" });
  }
  const p = prefix;
  return {
    group,
    intake: (model) => `${p}.intake.${token(model)}`,
    events: (id) => `${p}.events.${token(id)}`,
    cancel: `${p}.cancel`,
    resend: `${p}.resend`,
    heartbeat: `${p}.workers.${group}.heartbeat`,
    leave: `${p}.workers.${group}.leave`,
    drain: `${p}.workers.${group}.drain`,
    schedulerMetrics: `${p}.metrics.scheduler.${group}`,
    anyHeartbeat: `${p}.workers.*.heartbeat`,
    anyLeave: `${p}.workers.*.leave`,
    anySchedulerMetrics: `${p}.metrics.scheduler.*`,
    plansBucket: `${p}-plans`,
    requestsBucket: `${p}-requests`,
    journalKey: (id, g = group) => `${g}.${token(id)}`,
    journalKeys: `${group}.*`,
    planKey: (model) => `plan.${group}.${token(model)}`,
    planInForceKey: (model) => `plan.${group}.${token(model)}.in-force`,
  };
}
