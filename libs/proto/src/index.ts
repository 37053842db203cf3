export { loadContracts, reflectionDefinition, clientFor } from "./load";
export { toGrpcStatus, fromGrpcError } from "./grpc-error";
export type { TickItemMsg, TickReuseMsg, ReuseStateMsg, ReuseSnapshotMsg, ReuseResultMsg, TickRequestMsg, TickResponseMsg, ExchangeRequestMsg, ExchangeResponseMsg, PeerClient, CacheFigures, WorkerTraffic } from "./worker-messages";
export { ownedReuseState, reuseKey, reuseStateBytes, rowSource, snapshotOf, withoutPrevious } from "./worker-messages";
