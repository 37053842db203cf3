export { parseTrace, readTrace, parseNpyTrace } from "./trace";
export type { Trace } from "./trace";
export { contiguousPlacement, roundRobinPlacement, loadGreedyPlacement, expertLoad, transitions } from "./placement";
export type { Placement } from "./placement";
export { placementCost, chooseHomes, DEFAULT_HOMING_SLACK } from "./cost";
export type { PlacementCost, CostOptions, HomingPolicy } from "./cost";
export { solveExact, solveHeuristic, DEFAULT_BALANCE, DEFAULT_ROUNDS, DEFAULT_LAYER_TIME_LIMIT_S } from "./solve";
export type { SolveOptions, SolveResult } from "./solve";
