export { contiguousPlacement, roundRobinPlacement, loadGreedyPlacement, addReplicas } from "./placement";
export type { Placement } from "./placement";
export { placementCost, chooseHomes, crossWorkerLowerBound, DEFAULT_HOMING_SLACK } from "./cost";
export type { PlacementCost, CostOptions, HomingPolicy } from "./cost";
export { solveExact, solveHeuristic, solvePlacement, SOLVERS, DEFAULT_BALANCE, DEFAULT_ROUNDS, DEFAULT_LAYER_TIME_LIMIT_S } from "./solve";
export type { SolveOptions, SolveResult, SolverName } from "./solve";
export type { BoundOptions, CostBound } from "./cost";
