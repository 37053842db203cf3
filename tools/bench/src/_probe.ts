import { BUNDLED_MODEL_DIR } from "@switchyard/manifest";
import { createLiveBench } from "./cache-live";
import { median } from "./stats";
const b = await createLiveBench(BUNDLED_MODEL_DIR);
const batches = (process.env.B ?? "1,4").split(",").map(Number);
const fr = (process.env.F ?? "0.5,0.75").split(",").map(Number);
for (const batch of batches) for (const f of fr) for (const policy of (process.env.P ?? "lfu,predictive").split(",")) {
  const r = await b.run({ policy: policy === "all" ? undefined : policy, budgetFraction: f, batch }, 6, 1);
  const s = r.stats;
  console.log(batch, f, policy, "step", median(r.stepMs).toFixed(1), "hit", (s.hits / s.needed).toFixed(3), "loads/tick", (s.loads / r.ticks).toFixed(1), "wasted", (s.wastedBytes / r.ticks / 67579).toFixed(1), "stall", (s.stallMs / r.ticks).toFixed(1));
}
await b.close();
