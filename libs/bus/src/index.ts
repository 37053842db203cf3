export { subjects, token, groupOf, DEFAULT_SUBJECT_PREFIX, DEFAULT_SERVING_GROUP, SCHEDULER_QUEUE_GROUP } from "./subjects";
export type { Subjects } from "./subjects";
export { subjectMatches, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_MAX_PAYLOAD_BYTES } from "./bus";
export type { Bus, Json, Kv, KvEntry, Subscription } from "./bus";
export { createMemoryBus } from "./memory-bus";
export { createNatsBus, unwrapReply, DEFAULT_KV_HISTORY } from "./nats-bus";
export type { NatsBusOptions } from "./nats-bus";
export { fromNatsError } from "./nats-error";
