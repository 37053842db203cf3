export { startEmbeddedCluster } from "./embedded";
export type { EmbeddedCluster, EmbeddedClusterOptions } from "./embedded";
