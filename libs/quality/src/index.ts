export { evaluateQuality } from "./quality";
