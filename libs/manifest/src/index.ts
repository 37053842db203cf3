export { BUNDLED_MODEL_DIR, MANIFEST_FORMAT, manifestSchema, parseManifest, indexParts, loadManifest } from "./manifest";
export type { Manifest, PartSpec, PartIndex } from "./manifest";
export { generateParamsSchema, resolveGenerateParams, toResolvedParams, checkResolvedParams, MAX_IMAGES_PER_REQUEST, MAX_GUIDANCE } from "./request";
export type { GenerateParams, ResolvedGenerateParams } from "./request";
