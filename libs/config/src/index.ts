export { parseOrThrow } from "./zod-errors";
export { intInRange, numberInRange, port } from "./schemas";
export { readEnv } from "./env";
export { runService } from "./lifecycle";
