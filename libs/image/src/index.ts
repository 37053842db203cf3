export { encodePng, decodePng, toBytes, tileGrid } from "./png";
