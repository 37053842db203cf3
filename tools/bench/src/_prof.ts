import { createEngine } from "@switchyard/engine";
import { BUNDLED_MODEL_DIR, createOnnxModel, type ModelParts } from "@switchyard/model";
import { gaussianNoise } from "@switchyard/sampler";
const raw = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, denseThreads: Number(process.argv[2] ?? 2), expertThreads: Number(process.argv[3] ?? 1) });
const acc: Record<string, number> = {};
const wrap = (name: string, f: (...a: any[]) => Promise<any>) => async (...a: any[]) => { const t = performance.now(); const r = await f(...a); acc[name] = (acc[name] ?? 0) + performance.now() - t; return r; };
const parts: ModelParts = { ...raw, manifest: raw.manifest, embed: wrap("embed", raw.embed.bind(raw)), dense: wrap("dense", raw.dense.bind(raw)), expert: wrap("expert", raw.expert.bind(raw)), shared: wrap("shared", raw.shared.bind(raw)), final: wrap("final", raw.final.bind(raw)) } as ModelParts;
const engine = createEngine({ parts });
for (const B of [1, 8, 32]) {
  const items = Array.from({ length: B }, (_, i) => ({ x: gaussianNoise(1, i, 784), t: 0.5, label: i % 10, guidance: 2 }));
  await engine.forward(items);
  for (const k of Object.keys(acc)) acc[k] = 0;
  const N = 5; const t0 = performance.now();
  let r;
  for (let i = 0; i < N; i++) r = await engine.forward(items);
  const tot = (performance.now() - t0) / N;
  console.log(`B=${B} total ${tot.toFixed(1)}ms`, Object.entries(acc).map(([k, v]) => `${k} ${(v / N).toFixed(1)}`).join(" "), `timings`, JSON.stringify(r!.timings));
}
await raw.close();
