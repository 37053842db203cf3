export { loadContracts, reflectionDefinition, clientFor, PROTO_DIR, LOADER_OPTIONS } from "./load";
export type { Contracts } from "./load";
export { toGrpcStatus, fromGrpcError } from "./grpc-error";
export type { TickItemMsg, TickRequestMsg, TickResponseMsg, ExchangeRequestMsg, ExchangeResponseMsg, GatheredRows, PeerClient, CacheFigures, WorkerTraffic } from "./worker-messages";
export { rowSource } from "./worker-messages";
