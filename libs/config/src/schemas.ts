import { z } from "zod";

/** An integer in [min, max]; any violation reads `must be an integer >= min and <= max`. */
export function intInRange(min: number, max: number) {
  const message = `must be an integer >= ${min} and <= ${max}`;
  return z.number({ error: message }).int({ error: message }).min(min, { error: message }).max(max, { error: message });
}

/** A finite number in [min, max]. */
export function numberInRange(min: number, max: number) {
  const message = `must be a number >= ${min} and <= ${max}`;
  return z.number({ error: message }).min(min, { error: message }).max(max, { error: message });
}

/** A TCP port, 0 meaning "pick a free one". */
export const port = intInRange(0, 65535);

/** host:port, as users type it. */
export const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, {
  error: "must be host:port, e.g. 127.0.0.1:50051",
});
