import { createMemoryBus } from "@switchyard/bus";
import { type Bus, contiguousPlan } from "@switchyard/contract";
import { type ApiToken, type GatewayServer, gatewayConfigSchema, startGateway, tokensFromList, withSecrets } from "@switchyard/gateway";
import { loadManifest } from "@switchyard/model";
import { DEFAULT_WARM_UP_TICKS, type SchedulerLimits, type SchedulerService, type TraceRecorder, schedulerConfigSchema, startScheduler } from "@switchyard/scheduler";
import { type ExpertBudget, type LocalPool, type StartedWorker, type WarmUpOptions, type WorkerRuntime, createLocalPeers, createLocalPool, startWorker, trafficTotals, workerConfigSchema } from "@switchyard/worker";

/**
 * The whole system in one process: gateway (real gRPC server), scheduler and N
 * workers over the in-memory bus, workers exchanging rows by direct calls. Each role is
 * started by the same function its service uses (startGateway, startScheduler,
 * startWorker), with the same configuration schema and defaults; only the bus (in
 * memory), the data plane (direct calls) and the pool (the runtimes here) differ. Used
 * by `switchyard up` when no nats-server is installed, and by tests.
 */
export interface EmbeddedClusterOptions {
  readonly modelDir: string;
  readonly workers: number;
  readonly host?: string;
  readonly port?: number;
  readonly metricsPort?: number;
  /** HTTP API port (KServe v2 REST, OpenAI images); undefined = none, 0 = any free port. */
  readonly httpPort?: number;
  readonly limits?: Partial<SchedulerLimits>;
  /** API tokens; a bare string is a token without limits. */
  readonly apiTokens?: readonly (string | ApiToken)[];
  /** Unread bytes a Generate stream may hold (default DEFAULT_MAX_STREAM_BUFFER_BYTES). */
  readonly maxStreamBufferBytes?: number;
  readonly log?: (msg: string) => void;
  /** PEM certificate and key: serve TLS instead of plaintext. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Record routing traces into this directory (switchyard-trace v1). */
  readonly traceDir?: string;
  /** Workers run experts on an expert device under this budget and cache policy. */
  readonly cache?: { readonly budget: ExpertBudget; readonly policy: string; readonly lookahead?: number };
  /** Route-aware batching (default on). */
  readonly routeAware?: boolean;
  /** Each worker runs its parts at this tick size before serving, and the scheduler runs warm-up ticks (default: neither, as tests want). */
  readonly warmUp?: WarmUpOptions;
}

export interface EmbeddedCluster {
  readonly address: string;
  readonly gateway: GatewayServer;
  readonly scheduler: SchedulerService;
  readonly pool: LocalPool;
  readonly bus: Bus;
  readonly runtimes: readonly WorkerRuntime[];
  readonly traces: TraceRecorder | undefined;
  stop(): Promise<void>;
}

/** An expert budget in the form the worker's configuration takes (SWITCHYARD_EXPERT_BUDGET). */
function budgetText(b: ExpertBudget): string {
  return "fraction" in b ? `${b.fraction * 100}%` : `${b.bytes}`;
}

export async function startEmbeddedCluster(o: EmbeddedClusterOptions): Promise<EmbeddedCluster> {
  const manifest = loadManifest(o.modelDir);
  const ids = Array.from({ length: o.workers }, (_, i) => `worker-${i}`);
  const plan = contiguousPlan(ids, manifest.architecture.numLayers, manifest.moe.numExperts);
  const peers = createLocalPeers();
  const bus = createMemoryBus();
  const workers: StartedWorker[] = [];
  for (const id of ids) {
    const cfg = workerConfigSchema.parse({
      id, modelDir: o.modelDir, metricsPort: "off", drainTimeoutMs: 0,
      warmUpRows: o.warmUp?.rows ?? 0, warmUpRounds: o.warmUp?.rounds ?? 0,
      ...(o.cache ? { expertBudget: budgetText(o.cache.budget), cachePolicy: o.cache.policy, ...(o.cache.lookahead !== undefined ? { cacheLookahead: o.cache.lookahead } : {}) } : {}),
    });
    workers.push(await startWorker(cfg, { bus, inProcess: { peers, plan }, ...(o.log ? { log: (m: string) => o.log!(`[${id}] ${m}`) } : {}) }));
  }
  const runtimes = workers.map((w) => w.runtime);
  const pool = createLocalPool(runtimes, plan, (id) => peers.remove(id));
  const scheduler = await startScheduler(
    schedulerConfigSchema.parse({
      modelDir: o.modelDir, port: "off", metricsPort: "off", drainTimeoutMs: 0,
      ...(o.limits?.maxTickRows !== undefined ? { maxTickRows: o.limits.maxTickRows } : {}),
      ...(o.limits?.maxQueued !== undefined ? { maxQueued: o.limits.maxQueued } : {}),
      ...(o.limits?.maxRequestsPerTick !== undefined ? { maxRequestsPerTick: o.limits.maxRequestsPerTick } : {}),
      ...(o.limits?.maxQueuedWork !== undefined ? { maxQueuedWork: o.limits.maxQueuedWork } : {}),
      ...(o.limits?.maxReuseBytes !== undefined ? { maxReuseBytes: o.limits.maxReuseBytes } : {}),
      ...(o.traceDir ? { traceDir: o.traceDir } : {}),
      routeAwareBatching: o.routeAware !== false,
      warmUpTicks: o.warmUp ? DEFAULT_WARM_UP_TICKS : 0,
    }),
    { bus, pool, ...(o.log ? { log: o.log } : {}) },
  );
  // Serve once the workers are warm (with warm-up; without it the plan is in force at once).
  if (o.warmUp) await scheduler.service.whenReady(o.workers);
  const gateway = await startGateway(
    {
      ...withSecrets(
        gatewayConfigSchema.parse({
          modelDir: o.modelDir, host: o.host, port: o.port ?? 0, metricsPort: o.metricsPort ?? "off", httpPort: o.httpPort ?? "off", drainTimeoutMs: 0,
          ...(o.maxStreamBufferBytes !== undefined ? { maxStreamBufferBytes: o.maxStreamBufferBytes } : {}),
        }),
      ),
      tokens: tokensFromList(o.apiTokens ?? []),
      ...(o.tls ? { tls: o.tls } : {}),
    },
    { bus, workerTraffic: () => new Map(runtimes.map((r) => [r.id, trafficTotals(r.stats())])) },
  );
  return {
    address: gateway.server.address,
    gateway: gateway.server,
    scheduler: scheduler.service,
    pool,
    bus,
    runtimes,
    traces: scheduler.traces,
    async stop() {
      await gateway.stop();
      await scheduler.stop();
      await Promise.all(workers.map((w) => w.stop()));
      await bus.close();
    },
  };
}
