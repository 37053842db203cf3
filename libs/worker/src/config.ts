import { hostname } from "node:os";
import { z } from "zod";
import { BUS_ENV, busConfigShape } from "@switchyard/bus";
import { TELEMETRY_ENV, telemetryConfigShape } from "@switchyard/telemetry";
import { DATA_PLANE_ENV, dataPlaneConfigShape } from "@switchyard/data-plane";
import { DEFAULT_MAX_TICK_ROWS, DEFAULT_SERVING_GROUP } from "@switchyard/contract";
import { intInRange, parseOrThrow, port, readEnv } from "@switchyard/config";
import { DEFAULT_RESIDENCY_LOOKAHEAD } from "@switchyard/expert-cache";
import { BUNDLED_MODEL_DIR, DEFAULT_DEVICE_STREAMS, DEFAULT_EXPERT_THREADS, EXECUTION_PROVIDERS } from "@switchyard/model";
import { parseExpertBudget } from "./worker-cache";
import { DEFAULT_GATE_TURNS } from "./compute-gate";
import { DEFAULT_WARM_UP_ROUNDS } from "./warm-up-parts";
import { DEFAULT_REUSE_KEEP_BYTES } from "./kept-reuse-states";

/** Raw → resolved worker configuration (environment variables listed in the README). */
export const ENV = {
  ...BUS_ENV,
  ...TELEMETRY_ENV,
  ...DATA_PLANE_ENV,
  SWITCHYARD_WORKER_ID: "id",
  SWITCHYARD_MODEL_DIR: "modelDir",
  SWITCHYARD_GROUP: "group",
  SWITCHYARD_METRICS_PORT: "metricsPort",
  SWITCHYARD_DRAIN_TIMEOUT_MS: "drainTimeoutMs",
  SWITCHYARD_WORKER_HOST: "host",
  SWITCHYARD_WORKER_PORT: "port",
  SWITCHYARD_ADVERTISE_HOST: "advertiseHost",
  SWITCHYARD_EXCHANGE_TRANSPORT: "exchangeTransport",
  SWITCHYARD_EXCHANGE_PORT: "exchangePort",
  SWITCHYARD_HEARTBEAT_MS: "heartbeatMs",
  SWITCHYARD_WORKER_CORES: "cores",
  SWITCHYARD_EXECUTION_PROVIDER: "executionProvider",
  SWITCHYARD_DENSE_THREADS: "denseThreads",
  SWITCHYARD_EXPERT_THREADS: "expertThreads",
  SWITCHYARD_GROUP_EXPERTS: "groupExperts",
  SWITCHYARD_SHARED_THREAD: "sharedThread",
  SWITCHYARD_EXPERT_BUDGET: "expertBudget",
  SWITCHYARD_CACHE_POLICY: "cachePolicy",
  SWITCHYARD_CACHE_LOOKAHEAD: "cacheLookahead",
  SWITCHYARD_EXPERT_STREAMS: "expertStreams",
  SWITCHYARD_GATE_TURNS: "gateTurns",
  SWITCHYARD_WARMUP_ROWS: "warmUpRows",
  SWITCHYARD_WARMUP_ROUNDS: "warmUpRounds",
  SWITCHYARD_REUSE_KEEP_BYTES: "reuseKeepBytes",
} as const;

/** A drain waits for one tick to finish and the worker's experts to load elsewhere. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** Heartbeats every second; the scheduler drops a worker after ~3.5 s of silence. */
export const DEFAULT_HEARTBEAT_MS = 1000;

export const workerConfigSchema = z.strictObject({
  ...busConfigShape,
  ...telemetryConfigShape,
  ...dataPlaneConfigShape,
  id: z.string().min(1).default(() => `${hostname()}-${process.pid}`),
  modelDir: z.string().min(1).default(BUNDLED_MODEL_DIR),
  /** Serving group: the worker joins this group's scheduler and plan. */
  group: z.string().min(1).default(DEFAULT_SERVING_GROUP),
  /** Prometheus /metrics of this process (prom-client); 0 = any free port (logged), "off" = none. */
  metricsPort: z.union([port, z.literal("off")]).default(0),
  /** On SIGTERM, how long to wait for the scheduler to plan without this worker before stopping anyway. */
  drainTimeoutMs: intInRange(0, 600_000).default(DEFAULT_DRAIN_TIMEOUT_MS),
  host: z.string().min(1).default("127.0.0.1"),
  port: port.default(0),
  advertiseHost: z.string().min(1).optional(),
  /** "tcp": rows to and from peers over the TCP exchange where they offer one (exchange-tcp.ts); "grpc": always the gRPC Exchange. */
  exchangeTransport: z.enum(["tcp", "grpc"]).default("tcp"),
  /** The TCP exchange's port (0 = any free), on `host`. */
  exchangePort: port.default(0),
  heartbeatMs: intInRange(50, 60_000).default(DEFAULT_HEARTBEAT_MS),
  /**
   * The cores this worker may use (default: all of this machine's, os.availableParallelism()).
   * Its thread defaults follow (threadDefaults): a launcher that starts several workers on
   * one machine gives each its share (workerCoresShare in @switchyard/cluster), and the Helm
   * chart gives each pod its CPU request, rounded up to whole cores.
   */
  cores: intInRange(1, 4096).optional(),
  /** Where ONNX Runtime runs the model's parts: "cpu" (default) or "cuda" (needs the CUDA provider's libraries; EXECUTION_PROVIDERS). */
  executionProvider: z.enum(EXECUTION_PROVIDERS).default("cpu"),
  /** Default: min(4, cores), with or without an expert budget (threadDefaults). */
  denseThreads: intInRange(1, 256).optional(),
  expertThreads: intInRange(1, 256).default(DEFAULT_EXPERT_THREADS),
  /** "on": each layer's held experts run as one grouped session (a second copy of their weights); "off": one call per expert. */
  groupExperts: z.enum(["on", "off"]).default("on"),
  /** "on": the shared expert runs on a thread of its own, beside the routed experts (from SHARED_THREAD_MIN_ROWS rows); "off": on the main thread. Default: on with 2 cores or more. */
  sharedThread: z.enum(["on", "off"]).optional(),
  /** "all" (default): every held expert stays loaded; "50%" or "12MiB": an expert device under that budget. */
  expertBudget: z.string().default("all"),
  cachePolicy: z.enum(["lru", "lfu", "predictive"]).default("predictive"),
  cacheLookahead: intInRange(0, 64).default(DEFAULT_RESIDENCY_LOOKAHEAD),
  expertStreams: intInRange(1, 64).default(DEFAULT_DEVICE_STREAMS),
  /** Event-loop turns before each model call (compute gate); "off": no gate. */
  gateTurns: z.union([z.literal("off"), intInRange(0, 16)]).default(DEFAULT_GATE_TURNS),
  /** Warm-up tick size in model rows (the scheduler's SWITCHYARD_MAX_TICK_ROWS); 0: no warm-up. */
  warmUpRows: intInRange(0, 65536).default(DEFAULT_MAX_TICK_ROWS),
  warmUpRounds: intInRange(0, 16).default(DEFAULT_WARM_UP_ROUNDS),
  /** Most bytes of the residual-reuse states this worker made that it keeps for the scheduler to name (kept-reuse-states.ts); 0: none. */
  reuseKeepBytes: intInRange(0, 1e13).default(DEFAULT_REUSE_KEEP_BYTES),
});

export type WorkerConfig = z.output<typeof workerConfigSchema>;

export function resolveWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const cfg = parseOrThrow(workerConfigSchema, readEnv(ENV, env), { what: "worker config" });
  parseExpertBudget(cfg.expertBudget); // names SWITCHYARD_EXPERT_BUDGET when malformed
  return cfg;
}
