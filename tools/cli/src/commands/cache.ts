import { connectCliBus } from "../bus";
import { DEFAULT_SERVING_GROUP, DEFAULT_SUBJECT_PREFIX, channels, subjects as makeSubjects, subscribe } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { CacheFigures } from "@switchyard/proto";
import { num, str } from "../args";

export const CACHE_HELP = `switchyard cache stats [--nats HOST:PORT] [--prefix sy] [--group default] [--listen-ms 1500] [--json]
  Expert-cache figures of every worker running under a device budget
  (SWITCHYARD_EXPERT_BUDGET), from their heartbeats: policy, budget and resident bytes,
  hit rate, bytes loaded and wasted, stall time, prediction precision and recall, and
  the distinct experts a tick touches per layer. Counters are totals since each
  worker started; the same series are on the gateway's /metrics.`;

const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;
const pct = (a: number, b: number) => (b > 0 ? `${((a / b) * 100).toFixed(1)}%` : "-");

/** One readable block per worker. */
export function formatCacheStats(workers: ReadonlyMap<string, CacheFigures>): string {
  if (workers.size === 0) return "no worker reports an expert cache (set SWITCHYARD_EXPERT_BUDGET on the workers)";
  const out: string[] = [];
  for (const [id, c] of [...workers].sort(([a], [b]) => a.localeCompare(b))) {
    const perTick = (v: number) => (c.ticks > 0 ? v / c.ticks : 0);
    out.push(
      `${id}: ${c.policy}, budget ${mib(c.budgetBytes)}, resident ${mib(c.residentBytes)} (${c.residentExperts} experts)`,
      `  ticks ${c.ticks}, distinct experts per layer ${c.layerRuns ? (c.needed / c.layerRuns).toFixed(1) : "-"}, hit rate ${pct(c.hits, c.needed)} (${c.misses} misses)`,
      `  loaded ${mib(c.bytesLoaded)} (${c.loads} experts, ${c.prefetchLoads} by prefetch; ${mib(perTick(c.bytesLoaded))}/tick), wasted ${mib(c.wastedBytes)}`,
      `  stall ${(c.stallMs / 1000).toFixed(2)} s (${perTick(c.stallMs).toFixed(1)} ms/tick; on-demand loads ${(c.demandLoadMs / 1000).toFixed(2)} s)` +
        (c.predicted ? `, prediction precision ${pct(c.predictedHits, c.predicted)}, recall ${pct(c.predictedHits, c.needed)}` : ""),
    );
  }
  return out.join("\n");
}

export async function runCache(flags: Record<string, unknown>, positionals: string[]): Promise<void> {
  const [sub] = positionals;
  if (sub !== "stats") throw new SwitchyardError(`cache ${JSON.stringify(sub ?? "")}: the command is stats`, Code.InvalidArgument);
  const listenMs = num(flags, "listen-ms") ?? 1500;
  if (!(listenMs > 0)) throw new SwitchyardError(`--listen-ms ${listenMs} must be > 0`, Code.InvalidArgument, { field: "listen-ms" });
  const bus = await connectCliBus(flags);
  const subjects = makeSubjects(str(flags, "prefix") ?? DEFAULT_SUBJECT_PREFIX, str(flags, "group") ?? DEFAULT_SERVING_GROUP);
  const heard = new Map<string, CacheFigures>();
  try {
    const sub2 = subscribe(bus, channels(subjects).heartbeat, (hb) => void (hb.traffic?.cache && heard.set(hb.workerId, hb.traffic.cache)));
    await new Promise((r) => setTimeout(r, listenMs));
    sub2.unsubscribe();
  } finally {
    await bus.close();
  }
  if (flags.json === true) console.log(JSON.stringify(Object.fromEntries(heard), null, 1));
  else console.log(formatCacheStats(heard));
}
