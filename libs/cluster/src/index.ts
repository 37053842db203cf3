export { startEmbeddedCluster } from "./embedded";
export type { EmbeddedCluster } from "./embedded";
export { DEFAULT_SERVICE_NODE_FLAGS, startProcessCluster } from "./processes";
export type { ProcessCluster } from "./processes";
