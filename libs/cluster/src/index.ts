export { startEmbeddedCluster } from "./embedded";
export type { EmbeddedCluster, EmbeddedClusterOptions } from "./embedded";
export { DEFAULT_SERVICE_NODE_FLAGS, groupNames, startProcessCluster } from "./processes";
export type { ProcessCluster, ProcessClusterOptions, ServiceProcess, ServingGroup } from "./processes";
