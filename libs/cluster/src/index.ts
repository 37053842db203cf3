export { startEmbeddedCluster } from "./embedded";
export type { EmbeddedCluster, EmbeddedClusterOptions } from "./embedded";
export { DEFAULT_SERVICE_NODE_FLAGS, startProcessCluster } from "./processes";
export type { ProcessCluster, ProcessClusterOptions, ServiceProcess } from "./processes";
