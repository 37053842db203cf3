import { join } from "node:path";
import { type Engine, generate } from "@switchyard/engine";
import type { GenerateParams } from "@switchyard/manifest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Classifier, createClassifier } from "@switchyard/model";
import { readSafeTensors, toFloat32 } from "@switchyard/tensor";
import { frechetDistance, meanCov } from "./frechet";

export interface QualityOptions {
  /** Images generated per class. */
  readonly perClass: number;
  readonly steps: number;
  readonly sampler: GenerateParams["sampler"];
  readonly guidance: number;
  readonly shift: number;
  readonly seed: number;
  /** Images per forward batch. */
  readonly batch?: number;
  readonly onClass?: (label: number, accuracy: number) => void;
}

export interface QualityReport {
  /** Fraction of samples of each class that the classifier assigns to that class. */
  readonly perClassAccuracy: number[];
  readonly meanAccuracy: number;
  /** Fréchet distance of classifier features against the test set's. */
  readonly frechetDistance: number;
  readonly images: number;
  /** Model evaluations per image (CFG pairs count once). */
  readonly evalsPerImage: number;
  readonly seconds: number;
}

/** Generates perClass images of every class and scores them with the bundled classifier. */
export async function evaluateQuality(engine: Engine, modelDir: string, opts: QualityOptions): Promise<QualityReport> {
  const m = engine.parts.manifest;
  if (!m.classifier) throw new SwitchyardError(`model ${m.name} ships no classifier`, Code.FailedPrecondition);
  const stats = readSafeTensors(join(modelDir, m.classifier.stats));
  const clf: Classifier = await createClassifier(modelDir, m);
  const F = m.classifier.featureDim;
  const P = m.image.channels * m.image.height * m.image.width;
  const classes = m.conditioning.numClasses;
  const batch = opts.batch ?? 50;
  const feats = new Float32Array(classes * opts.perClass * F);
  const acc: number[] = [];
  let evals = 0;
  const t0 = performance.now();
  try {
    for (let c = 0; c < classes; c++) {
      let correct = 0;
      for (let done = 0; done < opts.perClass; done += batch) {
        const n = Math.min(batch, opts.perClass - done);
        const params: GenerateParams = {
          label: c, count: n, steps: opts.steps, sampler: opts.sampler, guidance: opts.guidance, shift: opts.shift,
          // distinct noise for every image: seed per (class, chunk)
          seed: opts.seed * 1_000_003 + c * 10_007 + done,
        };
        const r = await generate(engine, params);
        evals = r.evals;
        const x = new Float32Array(n * P);
        r.images.forEach((img, i) => x.set(img.map((v) => Math.max(-1, Math.min(1, v))), i * P));
        const out = await clf.classify(x, n);
        for (let i = 0; i < n; i++) {
          const row = out.logits.subarray(i * classes, i * classes + classes);
          let best = 0;
          for (let k = 1; k < classes; k++) if (row[k]! > row[best]!) best = k;
          if (best === c) correct++;
        }
        feats.set(out.features.subarray(0, n * F), (c * opts.perClass + done) * F);
      }
      acc.push(correct / opts.perClass);
      opts.onClass?.(c, correct / opts.perClass);
    }
  } finally {
    await clf.close();
  }
  const { mu, cov } = meanCov(feats, classes * opts.perClass, F);
  const fd = frechetDistance(mu, cov, toFloat32(stats.get("mu")), toFloat32(stats.get("cov")));
  return {
    perClassAccuracy: acc,
    meanAccuracy: acc.reduce((s, a) => s + a, 0) / acc.length,
    frechetDistance: fd,
    images: classes * opts.perClass,
    evalsPerImage: evals,
    seconds: (performance.now() - t0) / 1000,
  };
}
