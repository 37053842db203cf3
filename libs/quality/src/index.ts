export { evaluateQuality } from "./quality";
export type { QualityOptions, QualityReport } from "./quality";
export { frechetDistance, meanCov, sqrtPsd, symmetricEigen } from "./frechet";
