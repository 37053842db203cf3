import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectCliBus } from "../bus";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Placement, contiguousPlacement, crossWorkerLowerBound, placementCost, solvePlacement } from "@switchyard/placement";
import { type Trace, encodeNpyTrace, encodeTrace, mergeTraces, parseNpyTrace, readTrace, coActivation, traceStats } from "@switchyard/trace";
import { DEFAULT_SERVING_GROUP, DEFAULT_SUBJECT_PREFIX, type PlanFile, channels, decode, diffPlans, parsePlanFile, planInForce, subjects as makeSubjects, subscribe, toPlanFile } from "@switchyard/contract";
import type { WorkerTraffic } from "@switchyard/proto";
import { num, str } from "../args";

export const TRACE_HELP = `switchyard trace stats FILE [--experts N] [--json]
  Routing statistics of a trace: the runtime's switchyard-trace files (models/*/traces,
  SWITCHYARD_TRACE_DIR) or a [tokens, layers, top_k] int16 .npy (give --experts).
switchyard trace export PATH... --out FILE [--format switchyard|npy] [--model NAME] [--experts N]
  Merges trace files (a directory means every *.safetensors in it, e.g. SWITCHYARD_TRACE_DIR)
  into one switchyard-trace file, or into the [tokens, layers, top_k] int16 .npy layout
  (the format follows --format, else the extension of --out).`;

export const PLACEMENT_HELP = `switchyard placement <command>
  solve    --trace FILE --workers N [--solver exact|heuristic|contiguous|round-robin|load-greedy|eplb]
           [--time-limit S] [--balance 0.1] [--replicas N] [--model NAME] [--out plan.json] [--json]
           --replicas N adds N redundant copies per layer of the hottest experts (EPLB-style)
  simulate --trace FILE --plan plan.json [--hidden 128] [--json]   predicted bytes and imbalance
  diff     A.json B.json                                            experts that move
  apply    plan.json [--nats HOST:PORT] [--prefix sy]               store it in NATS KV; workers switch live
  status   [--model NAME] [--nats HOST:PORT] [--prefix sy]          plan in force and live traffic
  rollback [--model NAME] [--nats HOST:PORT] [--prefix sy]          re-apply the previous plan
  apply, status and rollback act on one serving group: --group NAME (default "default")`;

function loadTrace(path: string, flags: Record<string, unknown>): Trace {
  if (path.endsWith(".npy")) {
    const experts = num(flags, "experts");
    if (!experts) throw new SwitchyardError("--experts N is required for .npy traces", Code.InvalidArgument, { field: "experts" });
    return parseNpyTrace(readFileSync(path), experts, path);
  }
  return readTrace(path);
}

function requireStr(flags: Record<string, unknown>, name: string, pos?: string): string {
  const v = str(flags, name) ?? pos;
  if (!v) throw new SwitchyardError(`--${name} is required`, Code.InvalidArgument, { field: name });
  return v;
}

function readPlan(path: string): { plan: PlanFile; placement: Placement } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SwitchyardError(`cannot read plan ${path}: ${(e as Error).message}`, Code.InvalidArgument, { cause: e });
  }
  return parsePlanFile(raw);
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;

/** Trace files named on the command line; a directory stands for its *.safetensors files. */
function traceFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new SwitchyardError(`trace path ${p} does not exist`, Code.NotFound, { field: "path" });
    }
    if (st.isDirectory()) out.push(...readdirSync(p).filter((f) => f.endsWith(".safetensors") || f.endsWith(".npy")).sort().map((f) => join(p, f)));
    else out.push(p);
  }
  if (out.length === 0) throw new SwitchyardError(`no trace files in ${paths.join(", ") || "(no path given)"}`, Code.InvalidArgument, { field: "path" });
  return out;
}

export async function runTrace(flags: Record<string, unknown>, positionals: string[], modelName: () => string): Promise<void> {
  const [sub, file] = positionals;
  if (sub === "export") {
    const out = requireStr(flags, "out");
    const format = str(flags, "format") ?? (out.endsWith(".npy") ? "npy" : "switchyard");
    if (format !== "npy" && format !== "switchyard") throw new SwitchyardError(`--format ${JSON.stringify(format)} must be switchyard or npy`, Code.InvalidArgument, { field: "format" });
    const files = traceFiles(positionals.slice(1));
    const merged = mergeTraces(files.map((f) => loadTrace(f, flags)));
    writeFileSync(out, format === "npy" ? encodeNpyTrace(merged) : encodeTrace(merged, str(flags, "model") ?? modelName()));
    console.log(`wrote ${out} (${format}): ${merged.records} records from ${files.length} file${files.length === 1 ? "" : "s"}, ${merged.layers} layers × ${merged.experts} experts, top-${merged.topK}`);
    return;
  }
  if (sub !== "stats") throw new SwitchyardError(`trace ${JSON.stringify(sub ?? "")}: the commands are "trace stats FILE" and "trace export PATH... --out FILE"`, Code.InvalidArgument);
  const trace = loadTrace(requireStr(flags, "trace", file), flags);
  const s = traceStats(trace);
  const co = (["class", "band", "request"] as const).map((by) => coActivation(trace, by));
  if (flags.json === true) return console.log(JSON.stringify({ ...s, coActivation: co }, null, 1));
  console.log(`records ${s.records} (${s.requests} requests), ${s.layers} layers × ${s.experts} experts, top-${s.topK}, ${s.tokens} tokens/record`);
  console.log(`distinct experts per record per layer: ${s.distinctExpertsPerRecordLayer.toFixed(2)} of ${s.experts}`);
  console.log(`expert load max/mean per layer: ${s.expertLoadImbalance.map((x) => x.toFixed(2)).join(" ")}`);
  if (s.top1KeptNextStep !== undefined) console.log(`top-1 expert kept at the next step: ${pct(s.top1KeptNextStep)}`);
  // Co-activation: how much groups (classes, timestep bands, requests) share experts.
  for (const c of co) {
    const gs = c.groups;
    const mean = (f: (g: (typeof gs)[number]) => number) => gs.reduce((a, g) => a + f(g), 0) / Math.max(1, gs.length);
    console.log(`by ${c.by}: ${gs.length} groups, overlap between groups ${pct(c.meanOverlap)}, distinct experts per layer ${mean((g) => g.distinctPerLayer).toFixed(1)}, top quarter of experts carries ${pct(mean((g) => g.topQuarterShare))}`);
    if (c.by !== "request") for (const g of gs) console.log(`  ${g.key.padEnd(14)} ${String(g.records).padStart(6)} records  distinct/layer ${g.distinctPerLayer.toFixed(1)}  top quarter ${pct(g.topQuarterShare)}`);
  }
}

async function kvFor(flags: Record<string, unknown>) {
  const bus = await connectCliBus(flags);
  const subjects = makeSubjects(str(flags, "prefix") ?? DEFAULT_SUBJECT_PREFIX, str(flags, "group") ?? DEFAULT_SERVING_GROUP);
  return { bus, subjects, kv: await bus.kv(subjects.plansBucket) };
}

export async function runPlacement(flags: Record<string, unknown>, positionals: string[], modelName: () => string): Promise<void> {
  const [sub, a, b] = positionals;
  const json = flags.json === true;
  switch (sub) {
    case "solve": {
      const trace = loadTrace(requireStr(flags, "trace"), flags);
      const workers = num(flags, "workers");
      if (!workers) throw new SwitchyardError("--workers N is required", Code.InvalidArgument, { field: "workers" });
      const solver = str(flags, "solver") ?? "exact";
      const progress = json ? undefined : (m: string) => process.stderr.write(`  ${m}\n`);
      const { placement, seconds } = await solvePlacement(solver, trace, {
        workers,
        ...(num(flags, "time-limit") ? { timeLimitS: num(flags, "time-limit")! } : {}),
        ...(num(flags, "balance") !== undefined ? { balance: num(flags, "balance")! } : {}),
        ...(num(flags, "replicas") !== undefined ? { replicas: num(flags, "replicas")! } : {}),
        ...(progress ? { onProgress: progress } : {}),
      });
      const ids = Array.from({ length: workers }, (_, i) => `worker-${i}`);
      const plan = toPlanFile(placement, str(flags, "model") ?? modelName(), ids, solver);
      const cost = placementCost(trace, placement, { hidden: num(flags, "hidden") ?? 128 });
      const out = str(flags, "out");
      if (out) writeFileSync(out, JSON.stringify(plan, null, 1));
      if (json) return console.log(JSON.stringify({ plan, seconds, cost: { ...cost, homes: undefined } }, null, 1));
      console.log(`${solver} plan for ${workers} workers in ${seconds.toFixed(2)} s: ${mib(cost.bytesPerImage)} per image cross workers (${pct(cost.remoteFraction)} of assignments remote), imbalance ${cost.imbalance.toFixed(3)}${out ? `; wrote ${out}` : ""}`);
      return;
    }
    case "simulate": {
      const trace = loadTrace(requireStr(flags, "trace"), flags);
      const { plan, placement } = readPlan(requireStr(flags, "plan", a));
      const hidden = num(flags, "hidden") ?? 128;
      const rows = [
        ["plan", placementCost(trace, placement, { hidden })],
        ["contiguous", placementCost(trace, contiguousPlacement(placement.workers, trace.layers, trace.experts), { hidden })],
      ] as const;
      const bound = crossWorkerLowerBound(trace, placement.workers, { hidden });
      if (json) return console.log(JSON.stringify({ ...Object.fromEntries(rows.map(([n, c]) => [n, { ...c, homes: undefined }])), lowerBound: bound }, null, 1));
      console.log(`plan ${plan.solver ?? ""} v${plan.version ?? "-"} on ${trace.records} records (${rows[0][1].images} images):`);
      for (const [n, c] of rows) {
        console.log(`  ${n.padEnd(10)} dispatch-and-return ${mib(c.bytesPerImage)}/image (${c.rowsOutPerImage.toFixed(0)} rows out, ${c.rowsBackPerImage.toFixed(0)} back)  token-stays ${mib(c.tokenStaysBytesPerImage)}/image  imbalance ${c.imbalance.toFixed(3)} (mean ${c.meanImbalance.toFixed(3)})`);
      }
      console.log(`  no plan with ${Math.ceil(trace.experts / placement.workers)} experts per worker per layer can move less than ${mib(bound.bytesPerImage)}/image (lower bound, one home per image)`);
      return;
    }
    case "diff": {
      const pa = readPlan(requireStr(flags, "a", a)).plan;
      const pb = readPlan(requireStr(flags, "b", b)).plan;
      const d = diffPlans(pa, pb);
      if (json) return console.log(JSON.stringify(d, null, 1));
      console.log(`${d.moved.length} of ${d.total} experts move${d.copiesChanged.length ? `; the redundant copies of ${d.copiesChanged.length} change` : ""}`);
      for (const m of d.moved.slice(0, 50)) console.log(`  layer ${m.layer} expert ${m.expert}: ${m.from} → ${m.to}`);
      if (d.moved.length > 50) console.log(`  … ${d.moved.length - 50} more`);
      return;
    }
    case "apply": {
      const { plan } = readPlan(requireStr(flags, "plan", a));
      const { bus, subjects, kv } = await kvFor(flags);
      try {
        const key = subjects.planKey(plan.model);
        const cur = await kv.get(key);
        const version = (cur ? parsePlanFile(cur.value).plan.version ?? 0 : 0) + 1;
        const rev = cur ? await kv.update(key, { ...plan, version }, cur.revision) : await kv.create(key, { ...plan, version });
        console.log(`applied plan v${version} for ${plan.model} (KV revision ${rev}); the scheduler switches at the next tick boundary`);
      } finally {
        await bus.close();
      }
      return;
    }
    case "status":
    case "rollback": {
      const model = str(flags, "model") ?? modelName();
      const { bus, subjects, kv } = await kvFor(flags);
      try {
        const key = subjects.planKey(model);
        const hist = await kv.history(key);
        const cur = hist.at(-1);
        if (!cur) throw new SwitchyardError(`no plan stored for ${model}`, Code.NotFound);
        if (sub === "rollback") {
          const plans = hist.map((h) => parsePlanFile(h.value).plan);
          const curPlan = plans.at(-1)!;
          const prev = [...plans].reverse().find((p) => p.version !== curPlan.version && JSON.stringify(p.owners) !== JSON.stringify(curPlan.owners));
          if (!prev) throw new SwitchyardError(`plan v${curPlan.version} has no earlier, different plan to roll back to`, Code.FailedPrecondition);
          const version = (curPlan.version ?? 0) + 1;
          await kv.update(key, { ...prev, version }, cur.revision);
          console.log(`rolled back to the plan of v${prev.version} as v${version}`);
          return;
        }
        const { plan } = parsePlanFile(cur.value);
        const stored = await kv.get(subjects.planInForceKey(model));
        const applied = stored ? decode(planInForce, stored.value, "the plan in force") : undefined;
        const wanted = plan.owners.flatMap((row) => row.map((w) => plan.workers[w]));
        const inForce = applied?.owners !== undefined && applied.owners.join(",") === wanted.join(",");
        const traffic = new Map<string, WorkerTraffic>();
        const sub2 = subscribe(bus, channels(subjects).heartbeat, (hb) => void (hb.traffic && traffic.set(hb.workerId, hb.traffic)));
        await new Promise((r) => setTimeout(r, 1500));
        sub2.unsubscribe();
        // Measured since the plan in force was applied: today's totals minus those recorded at the switch.
        const since = new Map(
          [...traffic].map(([w, t]) => {
            const at = applied?.trafficAtApply?.[w];
            return [w, { ticks: t.ticks - (at?.ticks ?? 0), bytesReceived: t.bytesReceived - (at?.bytesReceived ?? 0), expertRows: t.expertRows - (at?.expertRows ?? 0), fromStart: !at }];
          }),
        );
        if (json) return console.log(JSON.stringify({ plan, inForce, appliedAt: applied?.appliedAt, revision: cur.revision, history: hist.length, sinceApplied: Object.fromEntries(since) }, null, 1));
        console.log(`operator plan for ${model}: v${plan.version} (${plan.solver ?? "?"}, ${plan.workers.length} workers, created ${plan.createdAt ?? "?"}), KV revision ${cur.revision}, ${hist.length} stored`);
        console.log(inForce ? "  in force at the scheduler" : "  not yet in force (the scheduler switches at its next tick boundary, once its workers are live)");
        if (applied?.appliedAt) console.log(`  switched to at ${applied.appliedAt} (the scheduler's plan v${applied.version}); measured since then:`);
        let bytes = 0;
        let ticks = 0;
        for (const [w, t] of since) {
          bytes += t.bytesReceived;
          ticks = Math.max(ticks, t.ticks);
          console.log(`  ${w}: ${mib(t.bytesReceived)} received, ${t.expertRows} expert rows, home in ${t.ticks} ticks${t.fromStart ? " (since the worker started: it joined after the switch)" : ""}`);
        }
        if (since.size > 0 && ticks > 0) console.log(`  all workers: ${mib(bytes)} between workers, ${mib(bytes / ticks)} per tick`);
        if (traffic.size === 0) console.log("  no worker heartbeats heard in 1.5 s");
      } finally {
        await bus.close();
      }
      return;
    }
    default:
      throw new SwitchyardError(`placement ${JSON.stringify(sub ?? "")}: commands are solve, simulate, diff, apply, status, rollback`, Code.InvalidArgument);
  }
}
