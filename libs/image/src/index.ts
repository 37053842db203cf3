export { encodePng, toBytes, tileGrid } from "./png";
