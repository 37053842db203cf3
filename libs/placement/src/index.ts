export { contiguousPlacement, loadGreedyPlacement, addReplicas } from "./placement";
export type { Placement } from "./placement";
export { placementCost, crossWorkerLowerBound } from "./cost";
export { solveExact, solveHeuristic, solvePlacement } from "./solve";
