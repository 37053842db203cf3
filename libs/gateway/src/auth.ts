import { createHash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { Code, SwitchyardError } from "@switchyard/errors";
import { MAX_PRIORITY } from "./submit";

/** What one API token may do at once; absent = no limit beyond the gateway's own. */
export interface TokenLimits {
  /** Requests in flight at once (a KServe batch counts one). */
  readonly maxConcurrent?: number;
  /** Images × steps in flight at once. */
  readonly maxWork?: number;
  /** Highest priority its requests may ask for. */
  readonly maxPriority?: number;
}

/** A caller the gateway knows: its token, a name for errors and logs (never the token), its limits. */
export interface ApiToken {
  readonly name: string;
  readonly token: string;
  readonly limits: TokenLimits;
}

/**
 * SWITCHYARD_API_TOKENS_FILE: a JSON array of `{name, token, maxConcurrent?, maxWork?,
 * maxPriority?}` (e.g. mounted from a Secret).
 */
export const apiTokensFileSchema = z.array(
  z.strictObject({
    name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.-]+$/, { error: "must be letters, digits, '_', '.' or '-'" }),
    token: z.string().min(16).max(1024).regex(/^\S+$/, { error: "must not contain whitespace" }),
    maxConcurrent: z.number().int().min(1).optional(),
    maxWork: z.number().int().min(1).optional(),
    maxPriority: z.number().int().min(-MAX_PRIORITY).max(MAX_PRIORITY).optional(),
  }),
);

/** Tokens as given in code or a comma-separated list: a bare string is a token without limits, named by its place in the list. */
export function tokensFromList(list: readonly (string | ApiToken)[]): ApiToken[] {
  return list.map((t, i) => (typeof t === "string" ? { name: `token-${i + 1}`, token: t, limits: {} } : t));
}

export function tokensFromFile(entries: z.output<typeof apiTokensFileSchema>): ApiToken[] {
  return entries.map(({ name, token, ...limits }) => ({ name, token, limits }));
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * The caller of an `authorization` value, shared by gRPC (metadata) and HTTP (header):
 * with tokens configured, it must be `Bearer <token>` with one of them (RFC 6750; a bare
 * token is refused, so a token pasted into the wrong header or a proxy that strips the
 * scheme does not pass by accident), compared in constant time. No tokens configured =
 * open (undefined: anyone).
 */
export function authenticate(header: string | undefined, tokens: readonly ApiToken[] | undefined): ApiToken | undefined {
  if (!tokens || tokens.length === 0) return undefined;
  const m = typeof header === "string" ? /^Bearer +(\S+)$/i.exec(header.trim()) : null;
  if (!m) throw new SwitchyardError("missing API token: send authorization: Bearer <token>", Code.Unauthenticated);
  const given = digest(m[1]!);
  let found: ApiToken | undefined;
  for (const t of tokens) if (timingSafeEqual(given, digest(t.token)) && !found) found = t;
  if (!found) throw new SwitchyardError("invalid API token (authorization: Bearer <token>)", Code.Unauthenticated);
  return found;
}

/** `authenticate` for a bare list of tokens (the /metrics token). */
export function checkToken(header: string | undefined, tokens: readonly string[] | undefined): void {
  authenticate(header, tokens ? tokensFromList(tokens) : undefined);
}
