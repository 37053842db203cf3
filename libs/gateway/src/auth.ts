import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * API-token check shared by gRPC (`authorization` metadata) and HTTP (`Authorization`
 * header): with tokens configured, the value must be `Bearer <token>` with one of them
 * (a bare token is still taken, as before). No tokens configured = open.
 */
export function checkToken(header: string | undefined, tokens: readonly string[] | undefined): void {
  if (!tokens || tokens.length === 0) return;
  const token = typeof header === "string" ? header.replace(/^Bearer\s+/i, "") : "";
  if (!tokens.includes(token)) throw new SwitchyardError("missing or invalid API token (authorization: Bearer <token>)", Code.Unauthenticated);
}
