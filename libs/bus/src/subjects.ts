import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Every NATS subject and KV key Switchyard uses, in one place. `prefix` isolates
 * clusters sharing one NATS server (tests use a random one).
 *
 *   <p>.intake.<model>          gateway → scheduler, request/reply, queue group "schedulers"
 *   <p>.events.<requestId>      scheduler → gateway: progress, images, done, error
 *   <p>.cancel                  gateway → schedulers: cancel a request
 *   <p>.workers.heartbeat       workers → scheduler: membership and load
 *   <p>.workers.leave           workers → scheduler: graceful leave
 *   <p>.metrics.scheduler       scheduler → gateways: queue and tick figures (every second)
 *   KV bucket <p>-plans, key plan.<model>: the placement plan in force (versioned)
 */
export const DEFAULT_SUBJECT_PREFIX = "sy";
export const SCHEDULER_QUEUE_GROUP = "schedulers";

export interface Subjects {
  intake(model: string): string;
  events(requestId: string): string;
  readonly cancel: string;
  readonly heartbeat: string;
  readonly leave: string;
  readonly schedulerMetrics: string;
  readonly plansBucket: string;
  planKey(model: string): string;
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

export function subjects(prefix = DEFAULT_SUBJECT_PREFIX): Subjects {
  // The prefix also names the KV bucket, whose names allow only [A-Za-z0-9_-].
  if (!PLAIN_TOKEN.test(prefix)) {
    throw new SwitchyardError(`subjectPrefix ${JSON.stringify(prefix.slice(0, 64))} must be letters, digits, '_' or '-'`, Code.InvalidArgument, { field: "subjectPrefix" });
  }
  const p = prefix;
  return {
    intake: (model) => `${p}.intake.${token(model)}`,
    events: (id) => `${p}.events.${token(id)}`,
    cancel: `${p}.cancel`,
    heartbeat: `${p}.workers.heartbeat`,
    leave: `${p}.workers.leave`,
    schedulerMetrics: `${p}.metrics.scheduler`,
    plansBucket: `${p}-plans`,
    planKey: (model) => `plan.${token(model)}`,
  };
}
