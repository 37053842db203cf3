export { subjectMatches } from "./bus";
export { createMemoryBus } from "./memory-bus";
export { createNatsBus, unwrapReply, DEFAULT_KV_HISTORY } from "./nats-bus";
export type { NatsBusOptions } from "./nats-bus";
export { fromNatsError } from "./nats-error";
export { BUS_ENV, DEFAULT_NATS_SERVERS, busConfigShape, connectBus } from "./config";
export type { BusConfig } from "./config";
export { startNatsServer, natsServerAvailable } from "./nats-server";
export type { NatsServer } from "./nats-server";
