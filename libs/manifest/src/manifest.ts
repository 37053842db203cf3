import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { intInRange, parseOrThrow } from "@switchyard/config";
import { Code, SwitchyardError, invalidArgument } from "@switchyard/errors";

/**
 * The model manifest (`manifest.json` beside the ONNX parts), written by
 * tools/model-zoo/export.py. Parts (DESIGN.md §2):
 *   embed              x [B,C,H,W], t [B], y [B] int64  -> h [B,T,D], c [B,D]
 *   block{l}.dense     h, c -> h1 [B,T,D], u [B,T,D], logits [B,T,E], gate [B,D]
 *   block{l}.expert{e} u [R,D] -> y [R,D]   (R = rows routed to e)
 *   block{l}.shared    u [R,D] -> y [R,D]
 *   final              h, c -> v [B,C,H,W]
 */
export const MANIFEST_FORMAT = "switchyard.model/v1";

const dim = z.union([z.number().int().nonnegative(), z.string().min(1)]);
const tensorSpec = z.strictObject({
  name: z.string().min(1),
  dtype: z.enum(["float32", "float16", "int64", "int32"]),
  shape: z.array(dim),
});

const partSchema = z.strictObject({
  name: z.string().min(1),
  kind: z.enum(["embed", "dense", "expert", "shared", "final"]),
  file: z.string().min(1),
  inputs: z.array(tensorSpec).min(1),
  outputs: z.array(tensorSpec).min(1),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: "must be 64 lowercase hex characters" }),
  layer: z.number().int().nonnegative().optional(),
  expert: z.number().int().nonnegative().optional(),
});

export const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, { error: "must be lowercase letters, digits, '.', '_' or '-'" }),
  version: z.string().min(1),
  description: z.string().optional(),
  image: z.strictObject({
    channels: intInRange(1, 16),
    height: intInRange(1, 4096),
    width: intInRange(1, 4096),
    valueRange: z.tuple([z.number(), z.number()]),
  }),
  architecture: z.strictObject({
    patch: intInRange(1, 64),
    tokens: intInRange(1, 1 << 20),
    hiddenSize: intInRange(1, 1 << 16),
    numLayers: intInRange(1, 1024),
    numHeads: intInRange(1, 1024),
  }),
  conditioning: z.strictObject({
    kind: z.literal("class"),
    numClasses: intInRange(1, 1 << 20),
    nullLabel: z.number().int().nonnegative(),
    classNames: z.array(z.string()).optional(),
  }),
  moe: z.strictObject({
    numExperts: intInRange(1, 4096),
    topK: intInRange(1, 64),
    expertHidden: intInRange(1, 1 << 20),
    sharedExpert: z.boolean(),
    sharedHidden: z.number().int().nonnegative(),
    routing: z.literal("softmax-topk-renormalized"),
  }),
  sampling: z.strictObject({
    defaultSteps: intInRange(1, 10000),
    defaultSampler: z.enum(["euler", "heun", "pc"]),
    defaultGuidance: z.number().min(0),
    defaultShift: z.number().positive(),
    maxSteps: intInRange(1, 10000),
    samplers: z.array(z.enum(["euler", "heun", "pc"])).min(1),
  }),
  parts: z.array(partSchema).min(1),
  golden: z
    .strictObject({ parts: z.string(), samples: z.record(z.string(), z.string()) })
    .optional(),
  traces: z
    .array(z.strictObject({ name: z.string(), file: z.string(), records: z.number().int(), requests: z.number().int() }))
    .optional(),
  classifier: z
    .strictObject({ file: z.string(), stats: z.string(), testAccuracy: z.number(), featureDim: z.number().int().positive() })
    .optional(),
});

export type Manifest = z.output<typeof manifestSchema>;
export type PartSpec = z.output<typeof partSchema>;

/** Index of a manifest's parts by role, checked complete. */
export interface PartIndex {
  readonly embed: PartSpec;
  readonly dense: readonly PartSpec[];
  /** experts[layer][expert] */
  readonly experts: readonly (readonly PartSpec[])[];
  readonly shared: readonly (PartSpec | undefined)[];
  readonly final: PartSpec;
}

/** Validates a parsed manifest object, including cross-field checks. */
export function parseManifest(raw: unknown): Manifest {
  const m = parseOrThrow(manifestSchema, raw, { what: "manifest" });
  if (m.conditioning.nullLabel < m.conditioning.numClasses) {
    throw invalidArgument("conditioning.nullLabel", `${m.conditioning.nullLabel} must be >= numClasses (${m.conditioning.numClasses})`);
  }
  if (m.moe.topK > m.moe.numExperts) {
    throw invalidArgument("moe.topK", `${m.moe.topK} must be <= moe.numExperts (${m.moe.numExperts})`);
  }
  if (m.moe.sharedExpert !== m.moe.sharedHidden > 0) {
    throw invalidArgument("moe.sharedHidden", `${m.moe.sharedHidden} must be > 0 exactly when moe.sharedExpert is true`);
  }
  indexParts(m);
  return m;
}

export function indexParts(m: Manifest): PartIndex {
  const L = m.architecture.numLayers;
  const E = m.moe.numExperts;
  let embed: PartSpec | undefined;
  let final: PartSpec | undefined;
  const dense: (PartSpec | undefined)[] = new Array(L).fill(undefined);
  const shared: (PartSpec | undefined)[] = new Array(L).fill(undefined);
  const experts: (PartSpec | undefined)[][] = Array.from({ length: L }, () => new Array(E).fill(undefined));
  const seen = new Set<string>();
  m.parts.forEach((p, i) => {
    const field = `parts[${i}]`;
    if (seen.has(p.name)) throw invalidArgument(`${field}.name`, `${JSON.stringify(p.name)} is listed twice`);
    seen.add(p.name);
    const needLayer = p.kind === "dense" || p.kind === "expert" || p.kind === "shared";
    if (needLayer && (p.layer === undefined || p.layer >= L)) {
      throw invalidArgument(`${field}.layer`, `${p.layer ?? "(missing)"} must be an integer >= 0 and < architecture.numLayers (${L})`);
    }
    if (p.kind === "expert" && (p.expert === undefined || p.expert >= E)) {
      throw invalidArgument(`${field}.expert`, `${p.expert ?? "(missing)"} must be an integer >= 0 and < moe.numExperts (${E})`);
    }
    const l = p.layer as number;
    switch (p.kind) {
      case "embed":
        if (embed) throw invalidArgument(`${field}.kind`, `"embed" must appear once`);
        embed = p;
        break;
      case "final":
        if (final) throw invalidArgument(`${field}.kind`, `"final" must appear once`);
        final = p;
        break;
      case "dense":
        dense[l] = p;
        break;
      case "shared":
        shared[l] = p;
        break;
      case "expert":
        (experts[l] as (PartSpec | undefined)[])[p.expert as number] = p;
        break;
    }
  });
  const missing: string[] = [];
  if (!embed) missing.push("embed");
  if (!final) missing.push("final");
  for (let l = 0; l < L; l++) {
    if (!dense[l]) missing.push(`block${l}.dense`);
    if (m.moe.sharedExpert && !shared[l]) missing.push(`block${l}.shared`);
    for (let e = 0; e < E; e++) if (!experts[l]?.[e]) missing.push(`block${l}.expert${e}`);
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).join(", ") + (missing.length > 5 ? `, … (${missing.length} in all)` : "");
    throw invalidArgument("parts", `must list every part; missing ${shown}`);
  }
  return {
    embed: embed as PartSpec,
    final: final as PartSpec,
    dense: dense as PartSpec[],
    shared,
    experts: experts as PartSpec[][],
  };
}

/** Reads and validates `dir/manifest.json`, checking that every part file exists. */
export function loadManifest(dir: string): Manifest {
  const path = join(dir, "manifest.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new SwitchyardError(`model directory ${dir} has no readable manifest.json`, Code.NotFound, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SwitchyardError(`${path} is not valid JSON: ${(e as Error).message}`, Code.InvalidArgument, { cause: e });
  }
  const m = parseManifest(raw);
  m.parts.forEach((p, i) => {
    if (!existsSync(join(dir, p.file))) {
      throw new SwitchyardError(`parts[${i}].file ${JSON.stringify(p.file)} does not exist in ${dir}`, Code.NotFound, { field: `parts[${i}].file` });
    }
  });
  return m;
}

/** The bundled reference model, models/dit-moe-fmnist at the repository root. */
export const BUNDLED_MODEL_DIR = new URL("../../../models/dit-moe-fmnist", import.meta.url).pathname;
