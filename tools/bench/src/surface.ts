/**
 * The codebase's shape, as the contract-layer redesign (#11) measures it:
 *  1. casts of bus payloads: type assertions (`as`, `as unknown as`) on what a bus
 *     handler received (a parameter of a function given to subscribe/serve/watch), on a
 *     KV entry's `.value`, on a bus request's reply, and `asJson(...)`-style casts;
 *  2. exported names: per package, the names its entry points export, and how many of
 *     them any file of another package imports;
 *  3. the largest classes (lines).
 *
 *   npm run report:surface -- [--root DIR] [--json]
 *
 * `--root` measures another checkout (e.g. a worktree of an older commit) with this
 * script, so that before and after are counted the same way.
 */
import { readFileSync, readdirSync, existsSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { parseArgs } from "node:util";
import ts from "typescript";

const { values: flags } = parseArgs({ options: { root: { type: "string", default: "." }, json: { type: "boolean", default: false } } });
const root = resolve(flags.root!);

interface Pkg {
  readonly name: string;
  readonly dir: string;
  /** subpath ("." or "./testing") → entry file */
  readonly entries: Map<string, string>;
}

function packages(): Pkg[] {
  const out: Pkg[] = [];
  for (const group of ["libs", "services", "tools"]) {
    const base = join(root, group);
    if (!existsSync(base)) continue;
    for (const d of readdirSync(base)) {
      const pj = join(base, d, "package.json");
      if (!existsSync(pj)) continue;
      const j = JSON.parse(readFileSync(pj, "utf8")) as { name: string; exports?: Record<string, string> | string; main?: string };
      const entries = new Map<string, string>();
      const ex = typeof j.exports === "string" ? { ".": j.exports } : (j.exports ?? (j.main ? { ".": j.main } : {}));
      for (const [k, v] of Object.entries(ex)) if (v.endsWith(".ts")) entries.set(k, resolve(base, d, v));
      out.push({ name: j.name, dir: join(base, d), entries });
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      if (f === "node_modules" || f === "dist" || f.startsWith(".")) continue;
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(".ts") && !p.endsWith(".d.ts")) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

const pkgs = packages();
const files = pkgs.flatMap((p) => sourceFiles(p.dir)).concat(sourceFiles(join(root, "k8s")));
const pkgOf = (file: string) => pkgs.find((p) => file.startsWith(p.dir + "/"));
const isTest = (f: string) => /\.test\.ts$/.test(f) || f.includes("/testing/");

// --- 2. exported names, via the type checker (re-exports followed)
const program = ts.createProgram(
  [...pkgs.flatMap((p) => [...p.entries.values()]), ...files],
  { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, allowImportingTsExtensions: true, noEmit: true, skipLibCheck: true, strict: true },
);
const checker = program.getTypeChecker();
const exported = new Map<string, Set<string>>(); // "pkg" or "pkg/sub" → names
for (const p of pkgs)
  for (const [sub, entry] of p.entries) {
    const sf = program.getSourceFile(entry);
    const sym = sf && checker.getSymbolAtLocation(sf);
    const names = new Set((sym ? checker.getExportsOfModule(sym) : []).map((s) => s.getName()));
    exported.set(sub === "." ? p.name : `${p.name}/${sub.replace(/^\.\//, "")}`, names);
  }
const used = new Map<string, Set<string>>();
const specifierOf = (s: string) => [...exported.keys()].find((k) => k === s);
for (const f of files) {
  const sf = program.getSourceFile(f);
  if (!sf) continue;
  const mine = pkgOf(f)?.name;
  const visit = (n: ts.Node) => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const key = specifierOf(n.moduleSpecifier.text);
      if (key && key.split("/").slice(0, 2).join("/") !== mine) {
        const set = used.get(key) ?? new Set();
        used.set(key, set);
        if (ts.isImportDeclaration(n)) {
          const b = n.importClause?.namedBindings;
          if (b && ts.isNamespaceImport(b)) for (const x of exported.get(key)!) set.add(x);
          else if (b) for (const e of b.elements) set.add((e.propertyName ?? e.name).text);
        } else if (n.exportClause && ts.isNamedExports(n.exportClause)) for (const e of n.exportClause.elements) set.add((e.propertyName ?? e.name).text);
        else for (const x of exported.get(key)!) set.add(x);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
}

// --- 1. casts of bus payloads (production code only)
const BUS_CALLBACK = new Set(["subscribe", "serve", "watch"]);
const casts: string[] = [];
for (const f of files) {
  if (isTest(f) || f.includes("/tools/bench/src/surface.ts")) continue;
  const sf = program.getSourceFile(f);
  if (!sf) continue;
  const handlerParams = new Set<ts.Symbol>();
  const visit = (n: ts.Node) => {
    if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression) && BUS_CALLBACK.has(n.expression.name.text))
      for (const a of n.arguments)
        if ((ts.isArrowFunction(a) || ts.isFunctionExpression(a)) && a.parameters[0]) {
          const s = checker.getSymbolAtLocation(a.parameters[0].name);
          if (s) handlerParams.add(s);
        }
    if (ts.isAsExpression(n) && !ts.isAsExpression(n.parent)) {
      let inner: ts.Expression = n.expression;
      while (ts.isAsExpression(inner) || ts.isParenthesizedExpression(inner) || ts.isAwaitExpression(inner) || ts.isNonNullExpression(inner)) inner = inner.expression;
      const text = inner.getText(sf);
      const sym = ts.isIdentifier(inner) ? checker.getSymbolAtLocation(inner) : undefined;
      const onPayload =
        (sym && handlerParams.has(sym)) ||
        (ts.isPropertyAccessExpression(inner) && inner.name.text === "value" && /\b(e|entry|cur|h|prev|stored)\b|\)\??$/.test(inner.expression.getText(sf))) ||
        (ts.isCallExpression(inner) && /(\.request|unwrapReply)\(/.test(text)) ||
        (ts.isIdentifier(inner) && /^(payload|p|hb|msg|d|v)$/.test(text) && n.type.getText(sf) !== "const");
      if (onPayload) {
        const { line } = sf.getLineAndCharacterOfPosition(n.getStart(sf));
        casts.push(`${relative(root, f)}:${line + 1}: ${n.getText(sf).replace(/\s+/g, " ").slice(0, 100)}`);
      }
    }
    // asJson-style helpers: a function whose whole body is a cast to Json
    if (ts.isFunctionDeclaration(n) && n.body?.statements.length === 1) {
      const st = n.body.statements[0]!;
      if (ts.isReturnStatement(st) && st.expression && ts.isAsExpression(st.expression) && /\bJson\b/.test(st.expression.type.getText(sf))) {
        const { line } = sf.getLineAndCharacterOfPosition(n.getStart(sf));
        casts.push(`${relative(root, f)}:${line + 1}: function ${n.name?.text}(…) { return … as Json } (called ${countCalls(n.name?.text ?? "")} times)`);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
}
function countCalls(name: string): number {
  let n = 0;
  for (const f of files) if (!isTest(f)) n += (readFileSync(f, "utf8").match(new RegExp(`\\b${name}\\(`, "g")) ?? []).length;
  return n - 1;
}

// --- 3. largest classes
const classes: { name: string; file: string; lines: number }[] = [];
for (const f of files) {
  if (isTest(f)) continue;
  const sf = program.getSourceFile(f);
  if (!sf) continue;
  const visit = (n: ts.Node) => {
    if (ts.isClassDeclaration(n) || ts.isClassExpression(n)) {
      const a = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const b = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      classes.push({ name: n.name?.text ?? "(anonymous)", file: relative(root, f), lines: b - a + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
}
classes.sort((a, b) => b.lines - a.lines);

const perPackage = [...exported].map(([k, names]) => ({ package: k, exported: names.size, usedElsewhere: [...names].filter((x) => used.get(k)?.has(x)).length, unused: [...names].filter((x) => !used.get(k)?.has(x)).sort() }));
const totals = { exported: perPackage.reduce((s, p) => s + p.exported, 0), usedElsewhere: perPackage.reduce((s, p) => s + p.usedElsewhere, 0) };
if (flags.json) {
  console.log(JSON.stringify({ root, casts, perPackage, totals, classes: classes.slice(0, 10) }, null, 1));
} else {
  console.log(`# ${root}`);
  console.log(`\n## casts of bus payloads in production code: ${casts.length}`);
  for (const c of casts) console.log(`  ${c}`);
  console.log(`\n## exported names: ${totals.exported}, used by another package: ${totals.usedElsewhere}, used by none: ${totals.exported - totals.usedElsewhere}`);
  for (const p of perPackage.sort((a, b) => a.package.localeCompare(b.package))) console.log(`  ${p.package.padEnd(34)} ${String(p.exported).padStart(4)} exported ${String(p.usedElsewhere).padStart(4)} used elsewhere${p.unused.length ? `  unused: ${p.unused.slice(0, 12).join(", ")}${p.unused.length > 12 ? ", …" : ""}` : ""}`);
  console.log(`\n## largest classes`);
  for (const c of classes.slice(0, 6)) console.log(`  ${String(c.lines).padStart(4)} lines  ${c.name}  (${c.file})`);
}
void dirname;
