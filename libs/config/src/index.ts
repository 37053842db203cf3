export { parseOrThrow, fromZodError, describeIssue } from "./zod-errors";
export { intInRange, numberInRange, port, hostPort } from "./schemas";
export { readEnv, mergeRaw } from "./env";
export type { EnvMap } from "./env";
export { runService } from "./lifecycle";
