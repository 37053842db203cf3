export { startEmbeddedCluster } from "./embedded";
export type { EmbeddedCluster, EmbeddedClusterOptions } from "./embedded";
export { startProcessCluster } from "./processes";
export type { ProcessCluster, ProcessClusterOptions, ServiceProcess } from "./processes";
