export { createClient, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BACKOFF_MS } from "./client";
export type { SwitchyardClient, ClientOptions, CallOptions, GenerateParams, GenerateEvent, Image, Timings, SamplerName } from "./client";
export { SwitchyardError, Code } from "@switchyard/errors";
