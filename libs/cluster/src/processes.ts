import { createRequire } from "node:module";
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { availableParallelism } from "node:os";
import { DEFAULT_SUBJECT_PREFIX } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";
import { generateClusterSecret } from "@switchyard/data-plane";
import { type NatsServer, type NatsUsers, generateNatsUsers, natsAuthorizationConfig, natsUserEnv, startNatsServer } from "@switchyard/bus";

/**
 * The cluster as separate processes: nats-server, N workers, a scheduler and a
 * gateway, each a real service (services/*) started with tsx. Used by `switchyard up`
 * when nats-server is installed, and by the end-to-end tests.
 */
export interface ProcessClusterOptions {
  readonly modelDir: string;
  /** Workers per serving group. */
  readonly workers: number;
  /**
   * Serving groups (default 1): each is a scheduler and its own `workers` workers, one
   * copy of the model; all share the gateway through the intake queue group. One group
   * is named "default" with workers worker-0…; several are g0, g1… with g0-worker-0….
   */
  readonly groups?: number;
  readonly host?: string;
  readonly port?: number;
  readonly metricsPort?: number;
  /** HTTP API port of the gateway; undefined = none, 0 = any free port. */
  readonly httpPort?: number;
  /** Use this NATS server instead of starting one. */
  readonly nats?: string;
  readonly subjectPrefix?: string;
  readonly env?: Record<string, string>;
  /** Where service logs go (default: dropped). */
  readonly log?: (line: string) => void;
  /** Node.js flags of every service process (default `DEFAULT_SERVICE_NODE_FLAGS`). */
  readonly nodeFlags?: readonly string[];
  /**
   * Supervise: restart every service (and the nats-server started here, on its port and
   * store) that exits unasked, with RESTART_BACKOFF. `switchyard up` does; default off.
   */
  readonly restart?: boolean;
  /** Told of each restart (the line also goes to `log`, as the service's `[supervisor] …` line). */
  readonly onRestart?: (line: string) => void;
  /**
   * NATS users per role (nats-auth.ts). With `nats`: the users that server knows. Without:
   * `true` generates them and starts nats-server with their permissions (`switchyard up`
   * does); default none (an open server, as most tests want).
   */
  readonly natsUsers?: NatsUsers | true;
  /** The data plane's cluster secret (SWITCHYARD_CLUSTER_SECRET) for every scheduler and worker; `true` generates one. Default none (open). */
  readonly clusterSecret?: string | true;
}

/**
 * V8's parallel and concurrent GC threads compete with ONNX Runtime and the other
 * services for the cores. On 2 cores, 2 workers at batch 32 stepped in 300 ms with
 * single-threaded GC and 388 ms without (median of 6 rounds each, same run order).
 *
 * A service's heap is small and nearly all live (a worker's ~24 MB), so V8's default
 * growing factor (~2) left its old-generation limit within one new space of the heap's
 * size, and a worker started a mark-compact every 3-4 ticks that freed almost nothing
 * (25.0 -> 24.2 MB, 40-60 ms of marking each). Growing 7x per mark-compact leaves those to
 * external-memory pressure: 29-30 -> 13-16 per bench:runtime run, and 2 workers at batch
 * 32 step ~0.8x as long (2 workers ÷ in-process: median 1.29 of 11 runs -> 1.08 of 6 with
 * every service on it; 1.16 of 6 with the workers alone on it), peak RSS unchanged. infra/entrypoint.sh
 * runs the services with the same flags.
 */
export const DEFAULT_SERVICE_NODE_FLAGS: readonly string[] = ["--single-threaded-gc", "--heap-growing-percent=600"];

/**
 * Each worker's share of this machine's cores, its SWITCHYARD_WORKER_CORES where neither
 * the caller's env nor this process's environment names one. Side by side on one machine,
 * workers that each size their threads for all its cores wait for each other's threads:
 * 2 worker processes on 2 cores stepped batch 32 in 80.9/74.8/88.1 ms given 1 core each
 * against 108.5/101.7/100.6 ms given both (threadDefaults in @switchyard/model).
 */
export function workerCoresShare(cores: number, workers: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

export interface ServiceProcess {
  readonly name: string;
  /** The running process (a new one after each restart). */
  readonly proc: ChildProcess;
  /** Times the supervisor restarted it (`ProcessClusterOptions.restart`). */
  readonly restarts: number;
  /** Resolves once the current incarnation is ready (after a restart: the new one). */
  ready(): Promise<void>;
  /**
   * Stops it for good (no restart): sends `signal` and waits for the exit; SIGKILL after
   * `graceMs` (default 5 s). To make it crash instead, signal `proc` itself.
   */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** Every output line so far (the last 1000). */
  output(): readonly string[];
  /** Resolves with the first output line (printed so far or later) that matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

export interface ProcessCluster {
  readonly address: string;
  readonly nats: string;
  readonly metricsPort: number;
  /** The gateway's HTTP API port, when served. */
  readonly httpPort: number | undefined;
  /** Every group's workers. */
  readonly workers: ServiceProcess[];
  /** The first group's scheduler. */
  readonly scheduler: ServiceProcess;
  readonly groups: readonly ServingGroup[];
  readonly gateway: ServiceProcess;
  /** The nats-server started for this cluster (none with `nats`). */
  readonly natsServer: NatsServer | undefined;
  /** The NATS users the services connect as (none: an open server); `operator` is for tools. */
  readonly natsUsers: NatsUsers | undefined;
  /** Starts one more worker (e.g. to replace a dead one) in `group` (default: the first). */
  addWorker(id: string, group?: string): Promise<ServiceProcess>;
  /** Starts another gateway on free ports; resolves with it and its gRPC address. */
  addGateway(): Promise<{ gateway: ServiceProcess; address: string }>;
  stop(): Promise<void>;
}

export interface ServingGroup {
  readonly name: string;
  readonly scheduler: ServiceProcess;
  readonly workers: ServiceProcess[];
}

/** Names of `count` serving groups (see ProcessClusterOptions.groups). */
export function groupNames(count: number): string[] {
  return count <= 1 ? ["default"] : Array.from({ length: count }, (_, i) => `g${i}`);
}

/** A service's entry point, resolved by package name (`@switchyard/<name>-service/main`), not by where it sits in the repository. */
const SERVICE_MAIN = (name: string) => createRequire(import.meta.url).resolve(`@switchyard/${name}-service/main`);

/**
 * Restarts of a service that exits unasked (`ProcessClusterOptions.restart`): after
 * 0.5 s, doubling to 10 s while it keeps dying, back to 0.5 s once it ran 30 s — the
 * way Kubernetes restarts a container (restartPolicy Always, with its crash backoff).
 */
export const RESTART_BACKOFF = { firstMs: 500, maxMs: 10_000, resetAfterMs: 30_000 } as const;

interface Supervision {
  readonly restart: boolean;
  readonly onRestart?: ((line: string) => void) | undefined;
}

function startService(name: string, service: string, env: Record<string, string>, log: ((l: string) => void) | undefined, readyPattern: RegExp, nodeFlags: readonly string[], sup: Supervision, timeoutMs = 60_000): Promise<{ sp: ServiceProcess; match: RegExpExecArray }> {
  const spawnOne = () => spawn(process.execPath, [...nodeFlags, "--import", "tsx", SERVICE_MAIN(service)], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  /** Its output so far (the last 1000 lines, over every incarnation): for waitFor and for error messages. */
  const lines: string[] = [];
  const watchers = new Set<(line: string) => void>();
  let proc = spawnOne();
  let stopping = false;
  let restarts = 0;
  let failures = 0;
  let startedAt = Date.now();
  /** Resolves when the current incarnation prints its ready line. */
  let ready!: Promise<void>;
  let markReady!: () => void;
  const newReady = () => (ready = new Promise<void>((r) => (markReady = r)));
  newReady();
  let first: ((m: RegExpExecArray) => void) | undefined;
  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > 1000) lines.shift();
    for (const w of [...watchers]) w(line);
    log?.(`${name}: ${line}`);
    const m = readyPattern.exec(line);
    if (m) {
      markReady();
      first?.(m);
      first = undefined;
    }
  };
  const attach = (p: ChildProcess) => {
    createInterface({ input: p.stdout! }).on("line", onLine);
    createInterface({ input: p.stderr! }).on("line", onLine);
    p.once("exit", (code, signal) => {
      if (stopping || !sup.restart || first) return;
      failures = Date.now() - startedAt > RESTART_BACKOFF.resetAfterMs ? 0 : failures + 1;
      const delay = Math.min(RESTART_BACKOFF.firstMs * 2 ** Math.max(0, failures - 1), RESTART_BACKOFF.maxMs);
      const why = `${name} exited (${signal ?? `code ${code}`}); restarting it in ${(delay / 1000).toFixed(1)} s`;
      onLine(`[supervisor] ${why}`);
      sup.onRestart?.(why);
      newReady();
      setTimeout(() => {
        if (stopping) return;
        restarts++;
        startedAt = Date.now();
        proc = spawnOne();
        attach(proc);
      }, delay).unref();
    });
  };
  attach(proc);
  const sp: ServiceProcess = {
    name,
    get proc() {
      return proc;
    },
    get restarts() {
      return restarts;
    },
    ready: () => ready,
    output: () => lines,
    async kill(signal: NodeJS.Signals = "SIGTERM", graceMs = 5000) {
      stopping = true;
      const p = proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once("exit", r));
      p.kill(signal);
      const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(t);
    },
    waitFor(pattern, ms = timeoutMs) {
      for (const l of lines) {
        const m = pattern.exec(l);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const p = proc;
        const done = () => {
          clearTimeout(timer);
          watchers.delete(watch);
          p.off("exit", onExit);
        };
        const watch = (l: string) => {
          const m = pattern.exec(l);
          if (!m) return;
          done();
          resolve(m);
        };
        // A supervised service that exits comes back: keep waiting for it.
        const onExit = (code: number | null) => {
          if (sup.restart && !stopping) return;
          done();
          reject(new SwitchyardError(`${name} exited with ${code} before printing ${pattern}:\n${lines.join("\n")}`, Code.Unavailable));
        };
        const timer = setTimeout(() => (done(), reject(new SwitchyardError(`${name} did not print ${pattern} within ${ms} ms:\n${lines.join("\n")}`, Code.DeadlineExceeded))), ms);
        watchers.add(watch);
        p.once("exit", onExit);
      });
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void sp.kill("SIGKILL");
      reject(new SwitchyardError(`${name} did not become ready in ${timeoutMs} ms:\n${lines.join("\n")}`, Code.Unavailable));
    }, timeoutMs);
    first = (m) => {
      clearTimeout(timer);
      resolve({ sp, match: m });
    };
    proc.once("exit", (code) => {
      if (!first) return;
      first = undefined;
      clearTimeout(timer);
      reject(new SwitchyardError(`${name} exited with ${code} before it was ready:\n${lines.join("\n")}`, Code.Unavailable));
    });
  });
}

export async function startProcessCluster(o: ProcessClusterOptions): Promise<ProcessCluster> {
  let natsServer: NatsServer | undefined;
  const sup: Supervision = { restart: o.restart === true, onRestart: o.onRestart };
  const prefix = o.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const natsUsers = o.natsUsers === true ? generateNatsUsers() : o.natsUsers;
  const nats =
    o.nats ??
    (natsServer = await startNatsServer({
      // nats-server has no output lines of its own here: its restarts go to `log` when nobody else listens
      // a supervisor stops its server last, after the services drained: Ctrl-C must not reach it first
      restart: sup.restart, ownProcessGroup: sup.restart, ...((o.onRestart ?? o.log) ? { onRestart: (o.onRestart ?? o.log)! } : {}),
      ...(natsUsers ? { config: natsAuthorizationConfig(natsUsers, prefix) } : {}),
    })).url;
  const clusterSecret = o.clusterSecret === true ? generateClusterSecret() : o.clusterSecret;
  const dataPlane: Record<string, string> = clusterSecret ? { SWITCHYARD_CLUSTER_SECRET: clusterSecret } : {};
  const as = (role: "gateway" | "scheduler" | "worker"): Record<string, string> => ({ ...(natsUsers ? natsUserEnv(natsUsers[role]) : {}), ...(role === "gateway" ? {} : dataPlane) });
  const host = o.host ?? "127.0.0.1";
  const common: Record<string, string> = {
    SWITCHYARD_MODEL_DIR: o.modelDir,
    SWITCHYARD_NATS: nats,
    SWITCHYARD_SUBJECT_PREFIX: prefix,
    // Human-readable lines (the launcher and `switchyard up` show them); JSON with SWITCHYARD_LOG_FORMAT=json.
    SWITCHYARD_LOG_FORMAT: "pretty",
    ...(o.env ?? {}),
  };
  const flags = o.nodeFlags ?? DEFAULT_SERVICE_NODE_FLAGS;
  const started: ServiceProcess[] = [];
  const names = groupNames(o.groups ?? 1);
  const workerCores = o.env?.SWITCHYARD_WORKER_CORES ?? process.env.SWITCHYARD_WORKER_CORES ?? String(workerCoresShare(availableParallelism(), o.workers * names.length));
  try {
    const addWorker = async (id: string, group = names[0]!) => {
      const { sp } = await startService(id, "worker", { ...common, ...as("worker"), SWITCHYARD_WORKER_CORES: workerCores, SWITCHYARD_GROUP: group, SWITCHYARD_WORKER_ID: id, SWITCHYARD_WORKER_HOST: host, SWITCHYARD_WORKER_PORT: "0" }, o.log, /serving data plane on/, flags, sup);
      started.push(sp);
      return sp;
    };
    const startGateway = async (ports: { port: number; metricsPort: number; httpPort: number | undefined }, name: string) => {
      const gw = await startService(
        name,
        "gateway",
        { ...common, ...as("gateway"), SWITCHYARD_GATEWAY_HOST: host, SWITCHYARD_GATEWAY_PORT: String(ports.port), SWITCHYARD_METRICS_PORT: String(ports.metricsPort), SWITCHYARD_HTTP_PORT: ports.httpPort === undefined ? "off" : String(ports.httpPort) },
        o.log,
        /serving .* on (\S+?)(?: \(TLS\))?; metrics on :(\d+)/,
        flags,
        sup,
      );
      started.push(gw.sp);
      return gw;
    };
    const groups: ServingGroup[] = await Promise.all(
      names.map(async (name) => {
        const label = names.length > 1 ? `scheduler ${name}` : "scheduler";
        const scheduler = (await startService(label, "scheduler", { ...common, ...as("scheduler"), SWITCHYARD_GROUP: name }, o.log, /serving \S+ for group/, flags, sup)).sp;
        started.push(scheduler);
        const workers = await Promise.all(Array.from({ length: o.workers }, (_, i) => addWorker(names.length > 1 ? `${name}-worker-${i}` : `worker-${i}`, name)));
        return { name, scheduler, workers };
      }),
    );
    const gw = await startGateway({ port: o.port ?? 0, metricsPort: o.metricsPort ?? 0, httpPort: o.httpPort }, "gateway");
    // Serving starts once every scheduler has its workers in its plan (and warmed them up).
    if (o.workers > 0) await Promise.all(groups.map((g) => g.scheduler.waitFor(new RegExp(`ready: plan v\\d+ over ${o.workers} workers`))));
    const httpPort = o.httpPort === undefined ? undefined : Number((await gw.sp.waitFor(/HTTP API .* on \S+:(\d+)/))[1]);
    const workers = groups.flatMap((g) => g.workers);
    let gateways = 1;
    return {
      address: gw.match[1]!,
      nats,
      metricsPort: Number(gw.match[2]),
      httpPort,
      workers,
      scheduler: groups[0]!.scheduler,
      groups,
      gateway: gw.sp,
      natsServer,
      natsUsers,
      addWorker: async (id, group = names[0]!) => {
        const w = await addWorker(id, group);
        workers.push(w);
        groups.find((g) => g.name === group)?.workers.push(w);
        return w;
      },
      addGateway: async () => {
        const g = await startGateway({ port: 0, metricsPort: 0, httpPort: undefined }, `gateway-${gateways++}`);
        return { gateway: g.sp, address: g.match[1]! };
      },
      async stop() {
        await Promise.all(started.map((s) => s.kill()));
        await natsServer?.stop();
      },
    };
  } catch (e) {
    await Promise.all(started.map((s) => s.kill("SIGKILL")));
    await natsServer?.stop();
    throw e;
  }
}
