export { createGatewayApi, toSubmit, DEFAULT_MAX_INFLIGHT, DEFAULT_SUBMIT_TIMEOUT_MS } from "./api";
export type { Gateway, GatewayOptions, GatewayMetrics, GenerateRequestWire } from "./api";
export { startGatewayServer, DEFAULT_MAX_RECEIVE_MESSAGE_BYTES, DEFAULT_MAX_SEND_MESSAGE_BYTES } from "./server";
export type { GatewayServer, GatewayServerOptions } from "./server";
export { renderMetrics, renderClusterMetrics } from "./metrics";
export type { WorkerTraffic, SchedulerFigures } from "./metrics";
export { createKserveApi, parseInferRequest, KSERVE_INPUT, KSERVE_OUTPUT, KSERVE_MAX_BATCH } from "./kserve";
export type { KserveStats } from "./kserve";
