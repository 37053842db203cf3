export { BUNDLED_MODEL_DIR, MANIFEST_FORMAT, manifestSchema, parseManifest, indexParts, loadManifest } from "./manifest";
export type { Manifest, PartSpec, PartIndex } from "./manifest";
export { generateParamsSchema, resolveGenerateParams, MAX_IMAGES_PER_REQUEST, MAX_GUIDANCE } from "./request";
export type { GenerateParams } from "./request";
