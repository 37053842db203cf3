import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * API-token check shared by gRPC (`authorization` metadata) and HTTP (`Authorization`
 * header): with tokens configured, the value must be `Bearer <token>` with one of them
 * (RFC 6750; a bare token is refused, so a token pasted into the wrong header or a
 * proxy that strips the scheme does not pass by accident). No tokens configured = open.
 */
export function checkToken(header: string | undefined, tokens: readonly string[] | undefined): void {
  if (!tokens || tokens.length === 0) return;
  const m = typeof header === "string" ? /^Bearer +(\S+)$/i.exec(header.trim()) : null;
  if (!m) throw new SwitchyardError("missing API token: send authorization: Bearer <token>", Code.Unauthenticated);
  if (!tokens.includes(m[1]!)) throw new SwitchyardError("invalid API token (authorization: Bearer <token>)", Code.Unauthenticated);
}
