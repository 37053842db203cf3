export { startEmbeddedCluster } from "./embedded";
export type { EmbeddedCluster } from "./embedded";
export { startProcessCluster } from "./processes";
export type { ProcessCluster } from "./processes";
