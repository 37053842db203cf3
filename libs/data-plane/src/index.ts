export { startWorkerServer, startHealthServer, createWorkerClients } from "./worker-grpc";
export type { WorkerClients } from "./worker-grpc";
