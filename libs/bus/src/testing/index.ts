// Tests start a nats-server the way `switchyard up` does.
export { startNatsServer, natsServerAvailable } from "../nats-server";
export type { NatsServer } from "../nats-server";
