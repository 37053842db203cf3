import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A real nats-server on a loopback port, with JetStream in a temp dir. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** The running process (a new one after each restart). */
  readonly proc: ChildProcess;
  /** Times it was restarted after exiting unasked. */
  readonly restarts: number;
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  readonly bin?: string;
  readonly timeoutMs?: number;
  /**
   * Restart the server when it exits unasked, on the same port and JetStream store (as a
   * supervisor or Kubernetes would): the streams, KV buckets and their contents survive,
   * and clients reconnect.
   */
  readonly restart?: boolean;
  /** How long it stays down before the restart (default 200 ms). */
  readonly restartDelayMs?: number;
  /** Told of each restart. */
  readonly onRestart?: (why: string) => void;
  /** More server configuration (e.g. `natsAuthorizationConfig`), written to a file only this user can read. */
  readonly config?: string;
  /**
   * Run the server in a process group of its own, so that a terminal's Ctrl-C reaches only
   * the parent, which stops it when everything that uses it has stopped (a supervisor's
   * shutdown order: `switchyard up`). In the same group (default) the server quits at
   * once on Ctrl-C, while the services still drain. Either way the server is stopped when
   * the parent exits.
   */
  readonly ownProcessGroup?: boolean;
}

export function natsServerAvailable(bin = process.env.NATS_SERVER_BIN ?? "nats-server"): boolean {
  return spawnSync(bin, ["--version"], { stdio: "ignore" }).status === 0;
}

function launch(bin: string, port: number, dir: string, timeoutMs: number, config: string | undefined, detached: boolean): Promise<{ proc: ChildProcess; port: number }> {
  const proc: ChildProcess = spawn(bin, [...(config ? ["-c", config] : []), "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], { stdio: ["ignore", "pipe", "pipe"], detached });
  return new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`nats-server did not start in time:\n${log}`)), timeoutMs);
    const onData = (b: Buffer) => {
      log += b.toString();
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    });
  });
}

/** The servers started here and not stopped: the parent going away (process.exit, an uncaught error) takes them with it. */
const running = new Set<() => void>();
function stopAllRunning(): void {
  for (const stop of running) stop();
}

/** Starts `nats-server -a 127.0.0.1 -p <free port> -js` and resolves once it listens. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = options.bin ?? process.env.NATS_SERVER_BIN ?? "nats-server";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), "sy-nats-"));
  let config: string | undefined;
  if (options.config) writeFileSync((config = join(dir, "nats.conf")), options.config, { mode: 0o600 });
  const detached = options.ownProcessGroup === true;
  const first = await launch(bin, -1, dir, timeoutMs, config, detached);
  const port = first.port;
  let proc = first.proc;
  let stopping = false;
  let restarts = 0;
  const supervise = (p: ChildProcess) =>
    p.once("exit", (code, signal) => {
      if (stopping || !options.restart) return;
      const why = `nats-server exited (${signal ?? `code ${code}`}); restarting it on port ${port}`;
      options.onRestart?.(why);
      const again = async (delay: number): Promise<void> => {
        await new Promise((r) => setTimeout(r, delay));
        if (stopping) return;
        try {
          ({ proc } = await launch(bin, port, dir, timeoutMs, config, detached));
          restarts++;
          supervise(proc);
        } catch (e) {
          options.onRestart?.(`nats-server did not come back (${(e as Error).message.split("\n")[0]}); retrying`);
          return again(Math.min(Math.max(delay, 100) * 2, 5000));
        }
      };
      void again(options.restartDelayMs ?? 200);
    });
  supervise(proc);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const onParentExit = () => {
    stopping = true;
    if (alive()) proc.kill("SIGTERM");
  };
  running.add(onParentExit);
  if (running.size === 1) process.once("exit", stopAllRunning);
  return {
    url: `127.0.0.1:${port}`,
    port,
    get proc() {
      return proc;
    },
    get restarts() {
      return restarts;
    },
    async stop() {
      stopping = true;
      running.delete(onParentExit);
      if (running.size === 0) process.off("exit", stopAllRunning);
      if (alive()) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
