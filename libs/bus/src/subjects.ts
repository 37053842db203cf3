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

/** NATS subject tokens may not contain '.', '*', '>' or whitespace. */
export function token(s: string): string {
  return s.replace(/[.*>\s]/g, "_");
}

export function subjects(prefix = DEFAULT_SUBJECT_PREFIX): Subjects {
  const p = token(prefix);
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
