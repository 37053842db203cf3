export { startNatsServer, natsServerAvailable } from "./nats-server";
export type { NatsServer } from "./nats-server";
