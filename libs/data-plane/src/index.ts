export { startWorkerServer, startHealthServer, createWorkerClients, DATA_PLANE_MAX_MESSAGE_BYTES, DEFAULT_TICK_TIMEOUT_MS } from "./worker-grpc";
export type { WorkerHandler, WorkerServer, WorkerClients } from "./worker-grpc";
