import { type Context, type Link, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";

/**
 * OpenTelemetry tracing, off unless an OTLP endpoint is configured
 * (SWITCHYARD_OTLP_ENDPOINT, or OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT): then
 * spans go to `<endpoint>/v1/traces` (OTLP over HTTP), and W3C `traceparent` travels
 * with every request — gRPC metadata, HTTP headers, the NATS submit message, the
 * data plane's calls. Off, the API is OpenTelemetry's no-op: nothing is recorded.
 */
export { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace };
export type { Context, Span };

export interface Tracing {
  readonly enabled: boolean;
  /** Flushes what is buffered and stops. */
  shutdown(): Promise<void>;
}

export function otlpEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.SWITCHYARD_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
}

let active: Tracing | undefined;

/**
 * Sets up the process's tracer provider once (per service process). The SDK, exporter
 * and context manager are imported only when tracing is on: loaded, they held ~5.7 MB of
 * a worker's ~30 MB heap, which every full mark-compact walks (#17).
 */
export async function setupTracing(service: string, attributes: Record<string, string> = {}, endpoint = otlpEndpoint()): Promise<Tracing> {
  if (active) return active;
  if (!endpoint) return (active = { enabled: false, shutdown: async () => undefined });
  const [{ AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, { BatchSpanProcessor, TracerProvider }] = await Promise.all([
    import("@opentelemetry/context-async-hooks"), import("@opentelemetry/core"), import("@opentelemetry/exporter-trace-otlp-http"), import("@opentelemetry/resources"), import("@opentelemetry/sdk-trace"),
  ]);
  if (active) return active;
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": `switchyard-${service}`, "service.namespace": "switchyard", ...attributes }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, "")}/v1/traces` }), scheduledDelayMillis: 500 })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return (active = { enabled: true, shutdown: () => provider.shutdown() });
}

export const tracer = () => trace.getTracer("switchyard");

/** The context a carrier (headers, metadata as a plain map, a message field) names. */
export function extractContext(carrier: Record<string, unknown>, parent: Context = context.active()): Context {
  return propagation.extract(parent, carrier, { get: (c, k) => { const v = (c as Record<string, unknown>)[k]; return Array.isArray(v) ? String(v[0]) : v === undefined ? undefined : String(v); }, keys: (c) => Object.keys(c as object) });
}

/** `{ traceparent, tracestate? }` of a context (empty when tracing is off or nothing is active). */
export function injectContext(ctx: Context = context.active()): Record<string, string> {
  const out: Record<string, string> = {};
  propagation.inject(ctx, out);
  return out;
}

/** Runs `f` in a new span (child of `parent`), ending it when `f` settles; errors mark it. */
export async function inSpan<T>(name: string, options: { kind?: SpanKind; parent?: Context; attributes?: Record<string, string | number | boolean>; links?: Link[] }, f: (span: Span) => Promise<T>): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, ...(options.attributes ? { attributes: options.attributes } : {}), ...(options.links ? { links: options.links } : {}) }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => f(span));
  } catch (e) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
    throw e;
  } finally {
    span.end();
  }
}
