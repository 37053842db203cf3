export { viewAs, bytesOf, tensor, floatToHalf, toFloat32, maxAbsDiff } from "./tensor";
export { parseSafeTensors, readSafeTensors, encodeSafeTensors } from "./safetensors";
export type { SafeTensors } from "./safetensors";
