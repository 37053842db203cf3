import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * The one place NATS client errors become SwitchyardErrors. Matched by class name so
 * that it holds across @nats-io package versions.
 */
export function fromNatsError(e: unknown, what: string): SwitchyardError {
  if (e instanceof SwitchyardError) return e;
  const err = e as { name?: string; message?: string; cause?: { name?: string }; isNoResponders?: () => boolean };
  const name = err?.name ?? "";
  const msg = `${what}: ${err?.message ?? String(e)}`;
  if (name === "NoRespondersError" || err?.cause?.name === "NoRespondersError" || (typeof err?.isNoResponders === "function" && err.isNoResponders())) {
    return new SwitchyardError(`${what}: no responders`, Code.Unavailable, { cause: e });
  }
  if (name === "TimeoutError" || err?.cause?.name === "TimeoutError") return new SwitchyardError(`${what}: timed out`, Code.DeadlineExceeded, { cause: e });
  if (name === "ClosedConnectionError" || name === "DrainingConnectionError" || name === "ConnectionError") {
    return new SwitchyardError(msg, Code.Unavailable, { cause: e });
  }
  // the client refuses a message over the server's max_payload before sending it
  if (/max_payload/i.test(err?.message ?? "")) return new SwitchyardError(`${msg} (the bus payload limit)`, Code.ResourceExhausted, { cause: e });
  // a client the server does not know (no user, a wrong password) is refused at connect
  if (name === "AuthorizationError" || /authorization violation|authentication/i.test(err?.message ?? "")) return new SwitchyardError(msg, Code.Unauthenticated, { cause: e });
  if (name === "PermissionViolationError" || /permissions violation/i.test(err?.message ?? "")) return new SwitchyardError(msg, Code.PermissionDenied, { cause: e });
  // JetStream KV compare-and-set failures carry "wrong last sequence"
  if (/wrong last sequence|key exists/i.test(err?.message ?? "")) return new SwitchyardError(msg, Code.Aborted, { cause: e });
  return new SwitchyardError(msg, Code.Unavailable, { cause: e });
}
