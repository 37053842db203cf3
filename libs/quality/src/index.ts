export { evaluateQuality, scoreImages } from "./quality";
export type { ImageScore } from "./quality";
