// Compiles Switchyard's entry points to plain JavaScript for the container image:
// one ES module per role, with the workspace's TypeScript (@switchyard/*) bundled in and
// every npm package left external (it is installed in node_modules: onnxruntime-node's
// native binding, the gRPC and NATS clients). Run from the repository root:
//
//   node infra/bundle.mjs [OUT]        (default OUT: dist/app)
//
// Layout of OUT (what the image's /app holds):
//   services/<role>/dist/main.mjs, tools/cli/dist/main.mjs   the entry points
//   proto/, models/                                          read at run time
// Each bundle sits three directories below OUT, as its sources do below the repository
// root: the libraries find models/ as `new URL("../../../models", import.meta.url)`; the
// image sets SWITCHYARD_PROTO_DIR=/app/proto for @switchyard/proto's contracts.
import { build } from "esbuild";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2] ?? "dist/app";
const entries = {
  "services/gateway/dist/main": "services/gateway/src/main.ts",
  "services/scheduler/dist/main": "services/scheduler/src/main.ts",
  "services/worker/dist/main": "services/worker/src/main.ts",
  "tools/cli/dist/main": "tools/cli/src/main.ts",
};
rmSync(out, { recursive: true, force: true });
const workspaceOnly = {
  name: "externals",
  setup(b) {
    // Bundle relative imports and @switchyard/*; resolve every other package at run time.
    b.onResolve({ filter: /^[^./]/ }, (a) => (a.path.startsWith("@switchyard/") || a.path.startsWith("node:") ? undefined : { path: a.path, external: true }));
  },
};
/** Both builds' settings: ES modules for Node 20, workspace code bundled, packages external. */
const common = {
  outdir: out,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: "linked",
  plugins: [workspaceOnly],
  logLevel: "warning",
  // CommonJS packages loaded from ESM bundles still call require().
  banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
};
await build({ ...common, entryPoints: Object.fromEntries(Object.entries(entries)) });
// An engine lane's thread (libs/engine/src/lanes.ts) is TypeScript: bundled on its own,
// next to every bundle that starts one.
for (const entry of Object.keys(entries)) {
  if (!readFileSync(join(out, `${entry}.mjs`), "utf8").includes("engine-lane-thread.mjs")) continue;
  await build({ ...common, entryPoints: { [join(entry, "..", "engine-lane-thread")]: "libs/engine/src/lane-thread.ts" } });
}
// The model's threads (the expert device's, the part thread's) are plain ES modules loaded
// next to their caller: each goes next to every bundle that loads it.
for (const thread of ["expert-device-thread.mjs", "part-thread-entry.mjs"]) {
  for (const entry of Object.keys(entries)) {
    if (readFileSync(join(out, `${entry}.mjs`), "utf8").includes(thread)) cpSync(join("libs/model/src", thread), join(out, entry, "..", thread));
  }
}
cpSync("libs/proto/proto", join(out, "proto"), { recursive: true });
mkdirSync(join(out, "models"), { recursive: true });
cpSync("models/dit-moe-fmnist", join(out, "models/dit-moe-fmnist"), { recursive: true });
writeFileSync(join(out, "package.json"), JSON.stringify({ name: "switchyard-app", private: true, type: "module" }, null, 2) + "\n");
console.log(`bundled ${Object.keys(entries).length} entry points into ${out}`);
