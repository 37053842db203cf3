import { type Bus, createMemoryBus, subjects as makeSubjects } from "@switchyard/bus";
import { type GatewayServer, startGatewayServer } from "@switchyard/gateway";
import { DEFAULT_DENSE_THREADS_WITH_DEVICE, type ModelParts, createOnnxModel, loadManifest } from "@switchyard/model";
import { DEFAULT_WARM_UP_TICKS, type SchedulerService, type SchedulerLimits, type TraceRecorder, createSchedulerService, createTraceRecorder } from "@switchyard/scheduler";
import { type ExpertBudget, type LocalPool, type WarmUpOptions, type WorkerRuntime, contiguousPlan, warmUpDense, warmUpExperts, createWorkerCache, createLocalPeers, createLocalPool, createWorkerRuntime, expertsOf, trafficTotals } from "@switchyard/worker";

/**
 * The whole system in one process: gateway (real gRPC server), scheduler and N
 * workers over the in-memory bus, workers exchanging rows by direct calls. Used by
 * `switchyard up` when no nats-server is installed, and by tests.
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
  readonly apiTokens?: readonly string[];
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

export async function startEmbeddedCluster(o: EmbeddedClusterOptions): Promise<EmbeddedCluster> {
  const manifest = loadManifest(o.modelDir);
  const ids = Array.from({ length: o.workers }, (_, i) => `worker-${i}`);
  const plan = contiguousPlan(ids, manifest.architecture.numLayers, manifest.moe.numExperts);
  const peers = createLocalPeers();
  const parts: ModelParts[] = [];
  const runtimes: WorkerRuntime[] = [];
  for (const id of ids) {
    const mine = new Set(expertsOf(plan, id));
    const p = await createOnnxModel({ dir: o.modelDir, experts: (l, e) => !o.cache && mine.has(l * manifest.moe.numExperts + e), ...(o.cache ? { denseThreads: DEFAULT_DENSE_THREADS_WITH_DEVICE } : {}) });
    parts.push(p);
    const residency = o.cache ? createWorkerCache({ modelDir: o.modelDir, manifest, budget: o.cache.budget, policy: o.cache.policy, ...(o.cache.lookahead !== undefined ? { lookahead: o.cache.lookahead } : {}) }) : undefined;
    if (residency) await residency.setHeld([...mine]);
    if (o.warmUp) {
      const E = manifest.moe.numExperts;
      const ms = (await warmUpDense(p, o.warmUp)) + (residency ? 0 : await warmUpExperts(p, [...mine].map((g) => [Math.floor(g / E), g % E] as const), o.warmUp));
      o.log?.(`[${id}] warmed up at ${o.warmUp.rows} rows × ${o.warmUp.rounds} in ${ms.toFixed(0)} ms`);
    }
    const rt = createWorkerRuntime({ id, parts: p, peers, ...(residency ? { residency } : {}), ...(o.warmUp ? { warmUp: o.warmUp } : {}) });
    peers.add(rt);
    runtimes.push(rt);
  }
  const pool = createLocalPool(runtimes, plan, (id) => peers.remove(id));
  const bus = createMemoryBus();
  const subjects = makeSubjects();
  const traces = o.traceDir
    ? createTraceRecorder({ dir: o.traceDir, model: manifest.name, layers: manifest.architecture.numLayers, experts: manifest.moe.numExperts, topK: manifest.moe.topK, tokens: manifest.architecture.tokens })
    : undefined;
  const scheduler = createSchedulerService({
    bus, subjects, manifest, pool,
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(traces ? { onRouting: (r) => traces.record(r) } : {}),
    ...(o.routeAware === false ? { routeAwareBatching: false } : {}),
    ...(o.warmUp ? { warmUpTicks: DEFAULT_WARM_UP_TICKS } : {}),
  });
  scheduler.start();
  // Serve once the workers are warm (with warm-up; without it the plan is in force at once).
  if (o.warmUp) await scheduler.whenReady(o.workers);
  const gateway = await startGatewayServer({
    bus, subjects, manifest,
    ...(o.host ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.metricsPort !== undefined ? { metricsPort: o.metricsPort } : {}),
    ...(o.httpPort !== undefined ? { httpPort: o.httpPort } : {}),
    ...(o.apiTokens ? { apiTokens: o.apiTokens } : {}),
    ...(o.maxStreamBufferBytes !== undefined ? { maxStreamBufferBytes: o.maxStreamBufferBytes } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    workerTraffic: () => new Map(runtimes.map((r) => [r.id, trafficTotals(r.stats())])),
  });
  return {
    address: gateway.address,
    gateway,
    scheduler,
    pool,
    bus,
    runtimes,
    traces,
    async stop() {
      await gateway.stop();
      await scheduler.stop();
      traces?.flush();
      await Promise.all(runtimes.map((r) => r.close()));
      await bus.close();
      await Promise.all(parts.map((p) => p.close()));
    },
  };
}
