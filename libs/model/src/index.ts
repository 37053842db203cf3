export { BUNDLED_MODEL_DIR, MANIFEST_FORMAT, manifestSchema, parseManifest, indexParts, loadManifest } from "./manifest";
export type { Manifest, PartSpec, PartIndex } from "./manifest";
export { createOnnxModel, createClassifier, DEFAULT_DENSE_THREADS, DEFAULT_EXPERT_THREADS } from "./onnx-model";
export type { ModelParts, DenseOutputs, OnnxModelOptions, Classifier } from "./onnx-model";
