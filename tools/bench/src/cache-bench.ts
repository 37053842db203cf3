/**
 * Expert-cache benchmark (issue: predictive cache), offline: replays the held-out
 * routing trace through one worker's expert cache at device budgets of 25 %, 50 % and
 * 75 % of the experts and batches of 1, 4 and 32 images per tick, for LRU, LFU and the
 * predictive policy. Prints distinct experts per layer, hit rate, MiB loaded per tick,
 * prefetch waste, stalls (on-demand loads) and prediction precision/recall.
 *
 *   npm run bench:cache -- [--lookahead 1]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { DEFAULT_LOOKAHEAD, replayTrace } from "@switchyard/expert-cache";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { readTrace } from "@switchyard/placement";
import { table } from "./stats";

const { values: flags } = parseArgs({ options: { lookahead: { type: "string", default: String(DEFAULT_LOOKAHEAD) } } });
const m = loadManifest(BUNDLED_MODEL_DIR);
const expertBytes = m.parts.find((p) => p.kind === "expert")!.bytes;
const hold = readTrace(join(BUNDLED_MODEL_DIR, "traces/holdout.safetensors"));
const prior = readTrace(join(BUNDLED_MODEL_DIR, "traces/solve.safetensors"));
const mib = (b: number) => (b / 1048576).toFixed(2);
const rows: (string | number)[][] = [];
for (const f of [0.25, 0.5, 0.75])
  for (const batch of [1, 4, 32])
    for (const policy of ["lru", "lfu", "predictive"]) {
      const r = replayTrace(hold, { policy, budgetFraction: f, batch, expertBytes, priorTrace: prior, lookahead: Number(flags.lookahead) });
      rows.push([
        `${f * 100}%`, batch, policy, r.distinctPerLayer.toFixed(1), `${(r.hitRate * 100).toFixed(1)}%`, mib(r.bytesLoadedPerTick), mib(r.wastedBytesPerTick),
        r.stallsPerTick.toFixed(1), r.precision === undefined ? "" : `${(r.precision * 100).toFixed(0)}%`, r.recall === undefined ? "" : `${(r.recall * 100).toFixed(0)}%`,
      ]);
    }
console.log(`# expert cache replay: traces/holdout (priors from traces/solve), ${m.architecture.numLayers}×${m.moe.numExperts} experts of ${(expertBytes / 1024).toFixed(0)} KiB, lookahead ${flags.lookahead}`);
console.log(table(["budget", "batch", "policy", "distinct/layer", "hit", "MiB loaded/tick", "MiB wasted/tick", "stalls/tick", "precision", "recall"], rows));
