// Packs @switchyard/client as a package that installs on its own, outside this
// repository: one ES module (the SDK with the workspace code it uses — errors, proto
// loading — bundled by esbuild; npm packages left as dependencies), one .d.ts with
// those types inlined (dts-bundle-generator), and the .proto files it loads at run time.
//
//   node libs/client/scripts/pack.mjs [DEST]     (run from the repository root; default DEST: dist/client)
//
// Prints the tarball's path (npm pack's output) on its last line.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const dest = resolve(process.argv[2] ?? "dist/client");
const stage = join(dest, "package");
rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, "dist"), { recursive: true });

const own = JSON.parse(readFileSync("libs/client/package.json", "utf8"));
const root = JSON.parse(readFileSync("package.json", "utf8"));
const external = ["@grpc/grpc-js", "@grpc/proto-loader"];

await build({
  entryPoints: ["libs/client/src/index.ts"],
  outfile: join(stage, "dist/index.js"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  external,
  logLevel: "warning",
  // @switchyard/proto reads its contracts from ../proto next to the module.
});
execFileSync(process.execPath, [
  "node_modules/dts-bundle-generator/dist/bin/dts-bundle-generator.js", "--silent", "--no-banner",
  "--project", "libs/client/tsconfig.pack.json", "--external-inlines", "@switchyard/errors", "@switchyard/proto",
  "-o", join(stage, "dist/index.d.ts"), "libs/client/src/index.ts",
], { stdio: "inherit" });
for (const dir of ["switchyard", "inference"]) cpSync(join("libs/proto/proto", dir), join(stage, "proto", dir), { recursive: true });
cpSync("libs/client/README.md", join(stage, "README.md"));
writeFileSync(
  join(stage, "package.json"),
  JSON.stringify(
    {
      name: own.name,
      version: own.version,
      description: own.description,
      license: "Apache-2.0",
      type: "module",
      engines: { node: ">=20" },
      main: "./dist/index.js",
      types: "./dist/index.d.ts",
      exports: { ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } },
      files: ["dist", "proto", "README.md"],
      dependencies: Object.fromEntries(external.map((d) => [d, root.dependencies[d]])),
    },
    null,
    2,
  ) + "\n",
);
const out = execFileSync("npm", ["pack", "--silent", "--pack-destination", dest], { cwd: stage, encoding: "utf8" }).trim().split("\n").at(-1);
console.log(join(dest, out));
