export { BUNDLED_MODEL_DIR, indexParts, loadManifest } from "./manifest";
export type { Manifest, PartSpec, PartIndex } from "./manifest";
export { resolveGenerateParams, toResolvedParams, checkResolvedParams, MAX_IMAGES_PER_REQUEST } from "./request";
export type { GenerateParams } from "./request";
