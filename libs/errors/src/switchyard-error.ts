import { Code, codeFromValue, codeToString } from "./code";

/** A path into a structured value, as zod reports it: ["images", 0, "steps"]. */
export type FieldPath = readonly (string | number)[];

/** Renders a field path as users write it: `images[0].steps`. */
export function formatFieldPath(path: FieldPath): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? p : `.${p}`;
  }
  return out;
}

/**
 * The one error type of Switchyard. The code leads the message
 * (`[invalid_argument] steps 0 must be >= 1 and <= 1000`), `cause` is kept, and
 * `field` names the offending input where there is one.
 */
export class SwitchyardError extends Error {
  readonly code: Code;
  /** The message without the `[code]` prefix. */
  readonly rawMessage: string;
  /** Offending field, when the error is about one input field. */
  readonly field: string | undefined;
  /** Extra key/values that travel with the error (e.g. over gRPC trailers). */
  readonly details: Readonly<Record<string, string>>;

  constructor(
    message: string,
    code: Code = Code.Unknown,
    options: { cause?: unknown; field?: string; details?: Record<string, string> } = {},
  ) {
    super(`[${codeToString(code)}] ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SwitchyardError";
    this.code = code;
    this.rawMessage = message;
    this.field = options.field;
    this.details = options.details ?? {};
  }

  /**
   * Converts anything caught into a SwitchyardError; use it at every catch boundary.
   * A SwitchyardError is returned as it is; an object with a gRPC-like numeric `code`
   * keeps that code; anything else becomes `unknown` (or `fallback`) with the cause kept.
   */
  static from(reason: unknown, fallback: Code = Code.Unknown): SwitchyardError {
    if (reason instanceof SwitchyardError) return reason;
    if (reason instanceof Error) {
      if (reason.name === "AbortError") return new SwitchyardError("operation was aborted", Code.Canceled, { cause: reason });
      const c = codeFromValue((reason as { code?: unknown }).code);
      return new SwitchyardError(reason.message, c ?? fallback, { cause: reason });
    }
    return new SwitchyardError(String(reason), fallback, { cause: reason });
  }
}

/** INVALID_ARGUMENT naming the field, the value and what is allowed. */
export function invalidArgument(field: string, message: string, cause?: unknown): SwitchyardError {
  return new SwitchyardError(`${field} ${message}`, Code.InvalidArgument, { field, cause });
}
