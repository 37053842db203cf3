import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type NatsServer, startNatsServer } from "@switchyard/bus/testing";

/**
 * The cluster as separate processes: nats-server, N workers, a scheduler and a
 * gateway, each a real service (services/*) started with tsx. Used by `switchyard up`
 * when nats-server is installed, and by the end-to-end tests.
 */
export interface ProcessClusterOptions {
  readonly modelDir: string;
  readonly workers: number;
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
}

/**
 * V8's parallel and concurrent GC threads compete with ONNX Runtime and the other
 * services for the cores. On 2 cores, 2 workers at batch 32 stepped in 300 ms with
 * single-threaded GC and 388 ms without (median of 6 rounds each, same run order).
 */
export const DEFAULT_SERVICE_NODE_FLAGS: readonly string[] = ["--single-threaded-gc"];

export interface ServiceProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves with the first output line (printed so far or later) that matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

export interface ProcessCluster {
  readonly address: string;
  readonly nats: string;
  readonly metricsPort: number;
  /** The gateway's HTTP API port, when served. */
  readonly httpPort: number | undefined;
  readonly workers: ServiceProcess[];
  readonly scheduler: ServiceProcess;
  readonly gateway: ServiceProcess;
  /** Starts one more worker (e.g. to replace a dead one). */
  addWorker(id: string): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

const SERVICE_MAIN = (name: string) => new URL(`../../../services/${name}/src/main.ts`, import.meta.url).pathname;

function startService(name: string, service: string, env: Record<string, string>, log: ((l: string) => void) | undefined, readyPattern: RegExp, nodeFlags: readonly string[], timeoutMs = 60_000): Promise<{ sp: ServiceProcess; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, [...nodeFlags, "--import", "tsx", SERVICE_MAIN(service)], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  /** Its output so far (the last 1000 lines): for waitFor and for error messages. */
  const lines: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const sp: ServiceProcess = {
    name,
    proc,
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
    waitFor(pattern, ms = timeoutMs) {
      for (const l of lines) {
        const m = pattern.exec(l);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          watchers.delete(watch);
          proc.off("exit", onExit);
        };
        const watch = (l: string) => {
          const m = pattern.exec(l);
          if (!m) return;
          done();
          resolve(m);
        };
        const onExit = (code: number | null) => (done(), reject(new SwitchyardError(`${name} exited with ${code} before printing ${pattern}:\n${lines.join("\n")}`, Code.Unavailable)));
        const timer = setTimeout(() => (done(), reject(new SwitchyardError(`${name} did not print ${pattern} within ${ms} ms:\n${lines.join("\n")}`, Code.DeadlineExceeded))), ms);
        watchers.add(watch);
        proc.once("exit", onExit);
      });
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void sp.kill("SIGKILL");
      reject(new SwitchyardError(`${name} did not become ready in ${timeoutMs} ms:\n${lines.join("\n")}`, Code.Unavailable));
    }, timeoutMs);
    const onLine = (line: string) => {
      lines.push(line);
      if (lines.length > 1000) lines.shift();
      for (const w of [...watchers]) w(line);
      log?.(`${name}: ${line}`);
      const m = readyPattern.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ sp, match: m });
      }
    };
    createInterface({ input: proc.stdout! }).on("line", onLine);
    createInterface({ input: proc.stderr! }).on("line", onLine);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new SwitchyardError(`${name} exited with ${code} before it was ready:\n${lines.join("\n")}`, Code.Unavailable));
    });
  });
}

export async function startProcessCluster(o: ProcessClusterOptions): Promise<ProcessCluster> {
  let natsServer: NatsServer | undefined;
  const nats = o.nats ?? (natsServer = await startNatsServer()).url;
  const host = o.host ?? "127.0.0.1";
  const common: Record<string, string> = {
    SWITCHYARD_MODEL_DIR: o.modelDir,
    SWITCHYARD_NATS: nats,
    SWITCHYARD_SUBJECT_PREFIX: o.subjectPrefix ?? "sy",
    ...(o.env ?? {}),
  };
  const flags = o.nodeFlags ?? DEFAULT_SERVICE_NODE_FLAGS;
  const started: ServiceProcess[] = [];
  try {
    const addWorker = async (id: string) => {
      const { sp } = await startService(id, "worker", { ...common, SWITCHYARD_WORKER_ID: id, SWITCHYARD_WORKER_HOST: host, SWITCHYARD_WORKER_PORT: "0" }, o.log, /serving data plane on/, flags);
      started.push(sp);
      return sp;
    };
    const scheduler = (await startService("scheduler", "scheduler", common, o.log, /\[scheduler\] serving/, flags)).sp;
    started.push(scheduler);
    const workers = await Promise.all(Array.from({ length: o.workers }, (_, i) => addWorker(`worker-${i}`)));
    const gw = await startService(
      "gateway",
      "gateway",
      { ...common, SWITCHYARD_GATEWAY_HOST: host, SWITCHYARD_GATEWAY_PORT: String(o.port ?? 0), SWITCHYARD_METRICS_PORT: String(o.metricsPort ?? 0), SWITCHYARD_HTTP_PORT: o.httpPort === undefined ? "off" : String(o.httpPort) },
      o.log,
      /serving .* on (\S+?)(?: \(TLS\))?; metrics on :(\d+)/,
      flags,
    );
    started.push(gw.sp);
    // Serving starts once the scheduler has every worker in its plan (and warmed them up).
    if (o.workers > 0) await scheduler.waitFor(new RegExp(`ready: plan v\\d+ over ${o.workers} workers`));
    const httpPort = o.httpPort === undefined ? undefined : Number((await gw.sp.waitFor(/HTTP API .* on \S+:(\d+)/))[1]);
    return {
      address: gw.match[1]!,
      nats,
      metricsPort: Number(gw.match[2]),
      httpPort,
      workers,
      scheduler,
      gateway: gw.sp,
      addWorker: async (id) => {
        const w = await addWorker(id);
        workers.push(w);
        return w;
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
