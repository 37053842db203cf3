export type { Bus, Json, Kv, KvEntry, Subscription } from "./bus";
export { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_REQUEST_TIMEOUT_MS } from "./bus";
export { subjects, token, groupOf, DEFAULT_SUBJECT_PREFIX, DEFAULT_SERVING_GROUP, SCHEDULER_QUEUE_GROUP } from "./subjects";
export type { Subjects } from "./subjects";
export {
  submitMessage, submitReply, requestEvent, cancelMessage, heartbeat, leaveMessage, drainRequest, drainReply, schedulerStats, planInForce, workerTraffic, resolvedParams,
  MAX_REQUEST_ID_CHARS, MAX_MODEL_NAME_CHARS, MAX_IMAGES_PER_REQUEST,
} from "./messages";
export type {
  SubmitMessage, SubmitReply, RequestEvent, ProgressEvent, DoneEvent, CancelMessage, Heartbeat, LeaveMessage, DrainRequest, DrainReply, SchedulerStats, PlanInForce, ResolvedParams,
} from "./messages";
export { channels, decode, publish, subscribe, serve, request } from "./channels";
export type { Channels, Topic, Service } from "./channels";
export { copiesOf, servingCopy, contiguousPlan, expertsOf, reassign } from "./plan";
export type { ExpertPlan, IndexedPlan } from "./plan";
export { PLAN_FORMAT, planFileSchema, parsePlanFile, toPlanFile, diffPlans } from "./plan-file";
export type { PlanFile } from "./plan-file";
export { f32ToBase64, base64ToF32, expertMaskBytes, createExpertsUsed, markExpertUsed, unpackExperts, expertsUsedBy, encodePrediction } from "./codecs";
export type { WorkerPool } from "./pool";
export { createChangeSignal } from "./change-signal";
export type { ChangeSignal } from "./change-signal";
export { DEFAULT_MAX_TICK_ROWS } from "./limits";
