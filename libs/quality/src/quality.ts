import { join } from "node:path";
import { type Engine, generate } from "@switchyard/engine";
import type { GenerateParams, Manifest } from "@switchyard/manifest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { createClassifier } from "@switchyard/model";
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

export interface ImageScore {
  readonly perClassAccuracy: number[];
  readonly meanAccuracy: number;
  readonly frechetDistance: number;
}

/**
 * Scores generated images with the model's classifier: `byClass[c]` holds images
 * ([C*H*W] each) generated for class c. Accuracy per class, and the Fréchet distance of
 * all images' classifier features against the test set's.
 */
export async function scoreImages(modelDir: string, m: Manifest, byClass: readonly (readonly Float32Array[])[]): Promise<ImageScore> {
  if (!m.classifier) throw new SwitchyardError(`model ${m.name} ships no classifier`, Code.FailedPrecondition);
  const stats = readSafeTensors(join(modelDir, m.classifier.stats));
  const clf = await createClassifier(modelDir, m);
  const F = m.classifier.featureDim;
  const P = m.image.channels * m.image.height * m.image.width;
  const classes = m.conditioning.numClasses;
  const total = byClass.reduce((s, l) => s + l.length, 0);
  const feats = new Float32Array(total * F);
  const acc: number[] = [];
  let row = 0;
  try {
    for (const [c, images] of byClass.entries()) {
      const x = new Float32Array(images.length * P);
      images.forEach((img, i) => x.set(img.map((v) => Math.max(-1, Math.min(1, v))), i * P));
      const out = await clf.classify(x, images.length);
      let correct = 0;
      for (let i = 0; i < images.length; i++) {
        const r = out.logits.subarray(i * classes, i * classes + classes);
        let best = 0;
        for (let k = 1; k < classes; k++) if (r[k]! > r[best]!) best = k;
        if (best === c) correct++;
      }
      feats.set(out.features.subarray(0, images.length * F), row * F);
      row += images.length;
      acc.push(images.length ? correct / images.length : NaN);
    }
  } finally {
    await clf.close();
  }
  const { mu, cov } = meanCov(feats, total, F);
  return {
    perClassAccuracy: acc,
    meanAccuracy: acc.reduce((s, a) => s + a, 0) / acc.length,
    frechetDistance: frechetDistance(mu, cov, toFloat32(stats.get("mu")), toFloat32(stats.get("cov"))),
  };
}

/** Generates perClass images of every class and scores them with the bundled classifier. */
export async function evaluateQuality(engine: Engine, modelDir: string, opts: QualityOptions): Promise<QualityReport> {
  const m = engine.parts.manifest;
  if (!m.classifier) throw new SwitchyardError(`model ${m.name} ships no classifier`, Code.FailedPrecondition);
  const classes = m.conditioning.numClasses;
  const batch = opts.batch ?? 50;
  let evals = 0;
  const t0 = performance.now();
  const byClass: Float32Array[][] = [];
  for (let c = 0; c < classes; c++) {
    const images: Float32Array[] = [];
    for (let done = 0; done < opts.perClass; done += batch) {
      const n = Math.min(batch, opts.perClass - done);
      const params: GenerateParams = {
        label: c, count: n, steps: opts.steps, sampler: opts.sampler, guidance: opts.guidance, shift: opts.shift,
        // distinct noise for every image: seed per (class, chunk)
        seed: opts.seed * 1_000_003 + c * 10_007 + done,
      };
      const r = await generate(engine, params);
      evals = r.evals;
      images.push(...r.images);
    }
    byClass.push(images);
  }
  const score = await scoreImages(modelDir, m, byClass);
  return { ...score, images: classes * opts.perClass, evalsPerImage: evals, seconds: (performance.now() - t0) / 1000 };
}
