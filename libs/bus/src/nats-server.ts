import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A real nats-server on a random loopback port, with JetStream in a temp dir. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export function natsServerAvailable(bin = process.env.NATS_SERVER_BIN ?? "nats-server"): boolean {
  return spawnSync(bin, ["--version"], { stdio: "ignore" }).status === 0;
}

/** Starts `nats-server -a 127.0.0.1 -p -1 -js` and resolves once it listens. */
export async function startNatsServer(options: { bin?: string; timeoutMs?: number } = {}): Promise<NatsServer> {
  const bin = options.bin ?? process.env.NATS_SERVER_BIN ?? "nats-server";
  const dir = mkdtempSync(join(tmpdir(), "sy-nats-"));
  const proc: ChildProcess = spawn(bin, ["-a", "127.0.0.1", "-p", "-1", "-js", "-sd", dir], { stdio: ["ignore", "pipe", "pipe"] });
  const port = await new Promise<number>((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`nats-server did not start in time:\n${log}`)), options.timeoutMs ?? 10_000);
    const onData = (b: Buffer) => {
      log += b.toString();
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    });
  });
  return {
    url: `127.0.0.1:${port}`,
    port,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
