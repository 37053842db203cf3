import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { natsServerAvailable } from "./testing/index";

const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * A parent like `switchyard up`: starts a supervised nats-server, prints its pid, and on
 * SIGINT waits a while (its services draining) before it stops the server; "exit" instead
 * of a stop: process.exit without stopping it.
 */
const PARENT = `
import { startNatsServer } from ${JSON.stringify(join(HERE, "nats-server.ts"))};
const [group, then] = (process.env.PARENT_ARGS ?? "").split(" ");
const own = group === "own";
const s = await startNatsServer({ restart: true, ownProcessGroup: own, onRestart: (l) => console.log("restart: " + l) });
process.once("SIGINT", () => {
  console.log("sigint");
  setTimeout(async () => {
    console.log("alive " + (s.proc.exitCode === null && s.proc.signalCode === null) + " restarts " + s.restarts);
    if (then === "exit") process.exit(0);
    await s.stop();
    process.exit(0);
  }, 600);
});
console.log("server " + s.proc.pid); // after the handler: the test's Ctrl-C follows this line
`;

/** Whether the process still runs (a zombie nobody reaped yet does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Whether it has gone within 5 s (nats-server shuts JetStream down on SIGTERM first). */
async function goneSoon(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

/** Runs the parent in a process group of its own and sends SIGINT to that whole group, as a terminal's Ctrl-C does. */
async function ctrlC(...args: string[]): Promise<{ out: string; server: number }> {
  const p: ChildProcess = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", PARENT], { env: { ...process.env, PARENT_ARGS: args.join(" ") }, detached: true, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const server = await new Promise<number>((resolve, reject) => {
    p.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /server (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    p.once("exit", (code) => reject(new Error(`parent exited with ${code}: ${out}`)));
  });
  const exited = new Promise((r) => p.once("exit", r));
  process.kill(-p.pid!, "SIGINT");
  await exited;
  return { out, server };
}

describe.skipIf(!natsServerAvailable())("nats-server and Ctrl-C", () => {
  it("in a process group of its own, it outlives a Ctrl-C until its parent stops it, and is not restarted", async () => {
    const { out, server } = await ctrlC("own");
    expect(out).toContain("alive true restarts 0");
    expect(out).not.toContain("restart:");
    expect(await goneSoon(server)).toBe(true);
  }, 30_000);

  it("in the parent's group, a Ctrl-C stops it at once and the supervisor restarts it (why up gives it a group of its own)", async () => {
    const { out } = await ctrlC("shared");
    expect(out).toContain("restart: nats-server exited");
  }, 30_000);

  it("a parent that exits without stopping it takes it along", async () => {
    const { out, server } = await ctrlC("own", "exit");
    expect(out).toContain("alive true");
    expect(await goneSoon(server)).toBe(true);
  }, 30_000);
});
