import { randomInt, randomUUID } from "node:crypto";
import { DEFAULT_MAX_PAYLOAD_BYTES, MAX_REQUEST_ID_CHARS, type SubmitMessage } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Manifest, resolveGenerateParams, toResolvedParams } from "@switchyard/manifest";

/**
 * One submit builder for every protocol (native gRPC, KServe gRPC and REST, the
 * OpenAI-style images API): each parses its own wire form into a `SubmitInput`, and
 * the priority, seed, request-id and parameter rules live here once.
 */
export interface SubmitInput {
  /** Client-chosen id; empty or absent = a fresh UUID. */
  readonly requestId?: string;
  /**
   * Generation parameters before defaults (label, count, steps, sampler, guidance,
   * shift, seed), as `resolveGenerateParams` takes them; an absent seed is drawn here.
   */
  readonly params: Readonly<Record<string, unknown>>;
  readonly priority?: number;
  /** Absolute deadline, ms since epoch. */
  readonly deadlineMs?: number;
  /** Preview every N completed steps; 0 = never. */
  readonly previewInterval?: number;
}

/** Where a protocol names each field, so that errors use the client's own words. */
export interface SubmitFieldNames {
  readonly priority: string;
  readonly previewInterval: string;
  readonly requestId: string;
  /** Field that holds generation parameters, e.g. "parameters" for KServe; "" = top level. */
  readonly paramPrefix: string;
}

export const NATIVE_FIELDS: SubmitFieldNames = { priority: "priority", previewInterval: "preview_interval", requestId: "request_id", paramPrefix: "" };

/** Client priorities are bounded so that no client can jump every queue by picking a huge number. */
export const MAX_PRIORITY = 1000;
/** Seeds drawn for requests that give none: 47 bits fit a double exactly and any wire int. */
const RANDOM_SEED_LIMIT = 2 ** 47;

export function randomSeed(): number {
  return randomInt(0, RANDOM_SEED_LIMIT);
}

export function checkPriority(v: number, field: string): number {
  if (!Number.isInteger(v) || Math.abs(v) > MAX_PRIORITY) {
    throw new SwitchyardError(`${field} ${clip(String(v))} must be an integer >= -${MAX_PRIORITY} and <= ${MAX_PRIORITY}`, Code.InvalidArgument, { field });
  }
  return v;
}

/** A client string as it may appear in an error: at most 64 characters, quoted. */
export function clip(s: string, max = 64): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${s.length} chars)`;
}

/** Room in one bus message for the event's own fields around its previews. */
const EVENT_ENVELOPE_BYTES = 1024;

/**
 * Most images whose previews fit one progress event on the bus: each preview is the
 * image's float32 bytes in base64 plus its JSON quotes and comma. A request asking for
 * previews of more images is refused at admission (before, its first progress event
 * was over NATS's payload limit and the publish threw in the scheduler's tick loop).
 */
export function maxPreviewImages(m: Manifest, maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES): number {
  const { channels, height, width } = m.image;
  const perImage = 4 * Math.ceil((channels * height * width * 4) / 3) + 3;
  return Math.floor((maxPayloadBytes - EVENT_ENVELOPE_BYTES) / perImage);
}

/** A request's work as limits count it: images × steps. */
export function workOf(s: SubmitMessage): number {
  return s.params.count * s.params.steps;
}

/** Validated, defaulted submit message; INVALID_ARGUMENT naming the protocol's field. */
export function buildSubmit(input: SubmitInput, m: Manifest, names: SubmitFieldNames = NATIVE_FIELDS): SubmitMessage {
  const priority = checkPriority(input.priority ?? 0, names.priority);
  const previewInterval = input.previewInterval ?? 0;
  if (!Number.isInteger(previewInterval) || previewInterval < 0) {
    throw new SwitchyardError(`${names.previewInterval} ${previewInterval} must be an integer >= 0`, Code.InvalidArgument, { field: names.previewInterval });
  }
  const requestId = input.requestId ?? "";
  if (requestId.length > MAX_REQUEST_ID_CHARS) {
    throw new SwitchyardError(`${names.requestId} has ${requestId.length} characters; at most ${MAX_REQUEST_ID_CHARS} allowed`, Code.InvalidArgument, { field: names.requestId });
  }
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input.params)) if (v !== undefined && v !== null) raw[k] = v;
  raw.seed ??= randomSeed();
  const p = resolveGenerateParams(raw, m, names.paramPrefix ? [names.paramPrefix] : []);
  const maxPreviews = maxPreviewImages(m);
  if (previewInterval > 0 && p.count > maxPreviews) {
    throw new SwitchyardError(
      `${names.previewInterval} ${previewInterval} with count ${p.count}: previews are sent for at most ${maxPreviews} images per request; use count <= ${maxPreviews} or ${names.previewInterval} 0`,
      Code.InvalidArgument,
      { field: names.previewInterval },
    );
  }
  return {
    requestId: requestId || randomUUID(),
    model: m.name,
    params: toResolvedParams(p, m),
    priority,
    deadlineMs: input.deadlineMs ?? null,
    previewInterval,
  };
}
