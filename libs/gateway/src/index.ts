export { startGatewayServer } from "./server";
export type { GatewayServer } from "./server";
export { DEFAULT_HTTP_PORT } from "./http";
export { startGateway } from "./start";
export { tokensFromList } from "./auth";
export type { ApiToken, TokenLimits } from "./auth";
export { ENV as GATEWAY_ENV, gatewayConfigSchema, resolveGatewayConfig, withSecrets } from "./config";
