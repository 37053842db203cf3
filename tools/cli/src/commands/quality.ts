import { createEngine } from "@switchyard/engine";
import { Code, SwitchyardError } from "@switchyard/errors";
import { createOnnxModel } from "@switchyard/model";
import { evaluateQuality } from "@switchyard/quality";
import { SAMPLERS, type SamplerName } from "@switchyard/sampler";
import { num, str } from "../args";

export const QUALITY_HELP = `switchyard quality [options]
  Generates --per-class images of every class in-process, classifies them with the
  model's bundled classifier and prints per-class accuracy and the Fréchet distance
  of classifier features against the Fashion-MNIST test set.
  --per-class N    images per class (default 100)
  --steps N        (default 20)   --sampler S (default euler)   --guidance G (default 2)
  --shift S        (default 1)    --seed N (default 0)          --json
  --model DIR      model directory (default: the bundled model)`;

export async function runQuality(flags: Record<string, unknown>, modelDir: string): Promise<void> {
  const sampler = (str(flags, "sampler") ?? "euler") as SamplerName;
  if (!SAMPLERS.includes(sampler)) {
    throw new SwitchyardError(`--sampler ${JSON.stringify(sampler)} must be one of ${SAMPLERS.join(", ")}`, Code.InvalidArgument, { field: "sampler" });
  }
  const parts = await createOnnxModel({ dir: modelDir });
  try {
    const m = parts.manifest;
    const json = flags.json === true;
    const r = await evaluateQuality(createEngine({ parts }), modelDir, {
      perClass: num(flags, "per-class") ?? 100,
      steps: num(flags, "steps") ?? m.sampling.defaultSteps,
      sampler,
      guidance: num(flags, "guidance") ?? m.sampling.defaultGuidance,
      shift: num(flags, "shift") ?? m.sampling.defaultShift,
      seed: num(flags, "seed") ?? 0,
      ...(json ? {} : { onClass: (c: number, a: number) => console.log(`  ${String(c).padStart(2)} ${(m.conditioning.classNames?.[c] ?? "").padEnd(12)} ${(a * 100).toFixed(1)}%`) }),
    });
    if (json) console.log(JSON.stringify(r, null, 1));
    else console.log(`mean accuracy ${(r.meanAccuracy * 100).toFixed(2)}%  Fréchet distance ${r.frechetDistance.toFixed(3)}  (${r.images} images, ${r.evalsPerImage} evals/image, ${r.seconds.toFixed(1)} s)`);
  } finally {
    await parts.close();
  }
}
