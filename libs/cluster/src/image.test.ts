import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@switchyard/client";
import { type NatsServer, startNatsServer, natsServerAvailable } from "@switchyard/bus/testing";
import { createEngine, generate } from "@switchyard/engine";
import { resolveGenerateParams } from "@switchyard/manifest";
import { BUNDLED_MODEL_DIR, createOnnxModel } from "@switchyard/model";

/**
 * The container image (#13), built here with buildah (infra/build-image.sh) and run
 * from its own filesystem: its Node.js, its compiled JavaScript, its production
 * node_modules and bundled model, as its configured user, with its entry point and
 * environment. Gateway, scheduler and two workers serve an image equal to the engine's.
 */
const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const haveBuildah = spawnSync("buildah", ["--version"]).status === 0 && spawnSync("chroot", ["--version"]).status === 0;
const TAG = "localhost/switchyard:test";
const env = { ...process.env, STORAGE_DRIVER: "vfs", BUILDAH_ISOLATION: "chroot" };
const buildah = (...args: string[]) => execFileSync("buildah", args, { env, encoding: "utf8" }).trim();

interface ImageConfig {
  Env?: string[];
  User?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, unknown>;
}

describe.skipIf(!haveBuildah || !natsServerAvailable())("container image", () => {
  let ctr = "";
  let root = "";
  let config: ImageConfig;
  let nats: NatsServer;
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    const t0 = performance.now();
    // Asynchronously: a build takes minutes, and a blocked test worker loses its link to vitest.
    const { stdout: out } = await promisify(execFile)("bash", ["infra/build-image.sh", TAG], { cwd: ROOT, env, encoding: "utf8", maxBuffer: 64 << 20 });
    console.log(`${out.trim()} (test: ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    config = (JSON.parse(buildah("inspect", "--type", "image", TAG)) as { OCIv1: { config: ImageConfig } }).OCIv1.config;
    ctr = buildah("from", "--quiet", TAG);
    root = buildah("mount", ctr);
    nats = await startNatsServer();
  }, 900_000);

  afterAll(async () => {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once("exit", r)) : undefined)));
    await nats?.stop();
    if (ctr) buildah("rm", ctr);
  });

  /** Starts `role` as the image would: its entry point, environment and user, inside its root filesystem. */
  function start(role: string, extra: Record<string, string>, ready: RegExp): Promise<RegExpExecArray> {
    const imageEnv = Object.fromEntries((config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    const [uid, gid] = (config.User ?? "").split(":");
    const argv = [...(config.Entrypoint ?? []), role];
    // chroot(8) changes root and user; the working directory is the image's.
    const p = spawn("chroot", [`--userspec=${uid}:${gid ?? uid}`, root, "/bin/sh", "-c", `cd ${config.WorkingDir ?? "/"} && exec "$@"`, "sh", ...argv], {
      env: { ...imageEnv, ...extra },
      stdio: ["ignore", "pipe", "pipe"],
    });
    procs.push(p);
    const lines: string[] = [];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${role} was not ready in 90 s:\n${lines.join("\n")}`)), 90_000);
      const onLine = (l: string) => {
        lines.push(l);
        const m = ready.exec(l);
        if (!m) return;
        clearTimeout(timer);
        resolve(m);
      };
      createInterface({ input: p.stdout! }).on("line", onLine);
      createInterface({ input: p.stderr! }).on("line", onLine);
      p.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${role} exited with ${code}:\n${lines.join("\n")}`))));
    });
  }

  it("is configured as a production image: non-root user, entry point, OCI labels, the bundled model", () => {
    expect(config.User).toBe("10001:10001");
    expect(config.Entrypoint).toEqual(["/app/entrypoint.sh"]);
    expect(config.Cmd).toEqual(["gateway"]);
    expect(config.Env).toContain("SWITCHYARD_MODEL_DIR=/app/models/dit-moe-fmnist");
    expect(config.Env).toContain("NODE_ENV=production");
    for (const k of ["title", "version", "revision", "source", "licenses"]) expect(config.Labels?.[`org.opencontainers.image.${k}`]).toBeTruthy();
    // Compiled JavaScript and production dependencies only: no TypeScript, no tsx, no test runner.
    const files = execFileSync("find", [`${root}/app`, "-name", "*.ts", "-not", "-name", "*.d.ts", "-not", "-path", "*/node_modules/*"], { encoding: "utf8" }).trim();
    expect(files).toBe("");
    for (const dev of ["tsx", "vitest", "typescript", "nx", "esbuild"]) expect(spawnSync("test", ["-e", `${root}/app/node_modules/${dev}`]).status, dev).not.toBe(0);
    expect(spawnSync("test", ["-e", `${root}/app/node_modules/onnxruntime-node`]).status).toBe(0);
    expect(spawnSync("test", ["-s", `${root}/app/models/dit-moe-fmnist/manifest.json`]).status).toBe(0);
    const node = execFileSync("chroot", [root, "node", "--version"], { encoding: "utf8" }).trim();
    expect(node).toMatch(/^v20\./);
  });

  it("serves from its own filesystem: gateway, scheduler and two workers generate the engine's image", async () => {
    const common = { SWITCHYARD_NATS: nats.url, SWITCHYARD_SUBJECT_PREFIX: `img${process.pid}`, SWITCHYARD_DENSE_THREADS: "1" };
    const scheduler = start("scheduler", common, /ready: plan v\d+ over 2 workers/);
    await Promise.all(["image-worker-0", "image-worker-1"].map((id) => start("worker", { ...common, SWITCHYARD_WORKER_ID: id, SWITCHYARD_WORKER_PORT: "0" }, /serving data plane on/)));
    await scheduler;
    const [, address] = await start("gateway", { ...common, SWITCHYARD_GATEWAY_PORT: "0", SWITCHYARD_METRICS_PORT: "0", SWITCHYARD_HTTP_PORT: "off" }, /serving \S+ on (\S+);/);
    const client = createClient({ address: address! });
    const reference = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
    try {
      const p = { label: 3, count: 2, steps: 6, seed: 5 };
      const r = await client.generateImages(p);
      const want = (await generate(createEngine({ parts: reference }), resolveGenerateParams(p, reference.manifest))).images;
      expect(r.images).toHaveLength(2);
      r.images.forEach((img, i) => expect(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength).equals(Buffer.from(want[i]!.buffer, want[i]!.byteOffset, want[i]!.byteLength))).toBe(true));
    } finally {
      client.close();
      await reference.close();
    }
    // SIGTERM: each service drains and exits 0 (PID 1 of its container would be the service itself).
    const codes = await Promise.all(procs.map((p) => new Promise<number | null>((resolve) => (p.once("exit", (c) => resolve(c)), p.kill("SIGTERM")))));
    expect(codes).toEqual([0, 0, 0, 0]);
  }, 240_000);
});
