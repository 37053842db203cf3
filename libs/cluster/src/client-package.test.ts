import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@switchyard/client";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { type EmbeddedCluster, startEmbeddedCluster } from "./embedded";

const run = promisify(execFile);
const REPO = new URL("../../..", import.meta.url).pathname;

/**
 * The SDK as a user gets it: `npm pack`ed (libs/client/scripts/pack.mjs), installed from
 * the tarball into an empty folder outside the repository, and generating against a
 * running cluster — with the same images the in-repo client gets.
 */
let cluster: EmbeddedCluster;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sy-sdk-"));
  cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0 });
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the @switchyard/client package", () => {
  it("packs with its types and contracts, installs on its own and generates against a cluster", async () => {
    const { stdout } = await run(process.execPath, [join(REPO, "libs/client/scripts/pack.mjs"), join(dir, "pack")], { cwd: REPO });
    const tarball = stdout.trim().split("\n").at(-1)!;
    expect(existsSync(tarball)).toBe(true);
    const app = join(dir, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "sdk-user", private: true, type: "module" }));
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", tarball], { cwd: app, timeout: 180_000 });
    // Nothing of the workspace: only the tarball and its npm dependencies.
    const installed = JSON.parse(readFileSync(join(app, "node_modules/@switchyard/client/package.json"), "utf8")) as { dependencies: Record<string, string>; types: string };
    expect(Object.keys(installed.dependencies).sort()).toEqual(["@grpc/grpc-js", "@grpc/proto-loader"]);
    expect(existsSync(join(app, "node_modules/@switchyard/errors"))).toBe(false);
    const dts = readFileSync(join(app, "node_modules/@switchyard/client", installed.types), "utf8");
    expect(dts).toMatch(/export declare function createClient\(options: ClientOptions\): SwitchyardClient;/);
    expect(dts).not.toMatch(/from "@switchyard\//);

    writeFileSync(
      join(app, "main.mjs"),
      `import { createClient, Code, SwitchyardError } from "@switchyard/client";
const client = createClient({ address: process.argv[2] });
const r = await client.generateImages({ label: 3, count: 2, steps: 3, seed: 7 });
let bad;
try { await client.generateImages({ label: 3, steps: 100000 }); } catch (e) { bad = { isError: e instanceof SwitchyardError, code: e.code, field: e.field, invalid: e.code === Code.InvalidArgument }; }
client.close();
console.log(JSON.stringify({ seed: r.seed, images: r.images.map((i) => Buffer.from(i.data.buffer, i.data.byteOffset, i.data.byteLength).toString("base64")), bad }));
`,
    );
    const out = await run(process.execPath, ["main.mjs", cluster.address], { cwd: app, timeout: 60_000 });
    const got = JSON.parse(out.stdout.trim().split("\n").at(-1)!) as { seed: number; images: string[]; bad: { isError: boolean; field: string; invalid: boolean } };
    const inRepo = createClient({ address: cluster.address });
    try {
      const want = await inRepo.generateImages({ label: 3, count: 2, steps: 3, seed: 7 });
      expect(got.seed).toBe(want.seed);
      expect(got.images).toEqual(want.images.map((i) => Buffer.from(i.data.buffer, i.data.byteOffset, i.data.byteLength).toString("base64")));
    } finally {
      inRepo.close();
    }
    expect(got.bad).toEqual({ isError: true, code: 3, field: "steps", invalid: true });
  }, 300_000);
});
