export { startWorkerServer, startHealthServer, createWorkerClients } from "./worker-grpc";
export type { WorkerClients } from "./worker-grpc";
export { CLUSTER_SECRET_METADATA, DATA_PLANE_ENV, checkClusterSecret, dataPlaneConfigShape, generateClusterSecret } from "./cluster-secret";
export { EXCHANGE_MAX_FRAME_BYTES, EXCHANGE_PROTOCOL, createExchangeClient, startExchangeServer } from "./exchange-tcp";
export type { ExchangeClient, ExchangeServer } from "./exchange-tcp";
