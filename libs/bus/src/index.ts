export { createMemoryBus } from "./memory-bus";
export { createNatsBus } from "./nats-bus";
export { BUS_ENV, DEFAULT_NATS_SERVERS, busConfigShape, connectBus } from "./config";
export { startNatsServer, natsServerAvailable } from "./nats-server";
export type { NatsServer } from "./nats-server";
export { NATS_ROLES, generateNatsUsers, natsAuthorizationConfig, natsUserEnv, rolePermissions } from "./nats-auth";
export type { NatsRole, NatsUser, NatsUsers } from "./nats-auth";
