export { bytesPerElement, shapeSize, viewAs, bytesOf, tensor, halfToFloat, floatToHalf, toFloat32, maxAbsDiff } from "./tensor";
export type { DType, Tensor, TypedArrayByDType, AnyTypedArray } from "./tensor";
export { parseSafeTensors, readSafeTensors, encodeSafeTensors } from "./safetensors";
export type { SafeTensors } from "./safetensors";
