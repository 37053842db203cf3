import { writeFileSync } from "node:fs";
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import * as vl from "vega-lite";
import type { SecondRow } from "./output";
import type { Summary } from "./summary";

/**
 * Charts as SVG and PNG, without a browser: vega-lite specs compiled by vega-lite,
 * rendered to SVG by vega's headless renderer, rasterized by resvg.
 */
type Spec = vl.TopLevelSpec;
const FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif";
const CONFIG = { font: FONT, view: { stroke: null }, axis: { labelFontSize: 12, titleFontSize: 13, gridColor: "#e6e6e6" }, legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 400 }, title: { fontSize: 15, anchor: "start" as const } };

export async function renderChart(spec: Spec, basePath: string): Promise<{ svg: string; png: string }> {
  const compiled = vl.compile({ ...spec, config: { ...CONFIG, ...(spec as { config?: object }).config } } as Spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { background: "white", fitTo: { mode: "zoom", value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } }).render().asPng();
  writeFileSync(`${basePath}.svg`, svg);
  writeFileSync(`${basePath}.png`, png);
  return { svg: `${basePath}.svg`, png: `${basePath}.png` };
}

/** Latency CDF of one or more runs: fraction of requests done within x ms. */
export function cdfChart(series: { name: string; points: { ms: number; fraction: number }[] }[], title: string): Spec {
  return {
    title, width: 560, height: 300,
    data: { values: series.flatMap((s) => s.points.map((p) => ({ run: s.name, ms: Math.max(0.001, p.ms), fraction: p.fraction }))) },
    mark: { type: "line", interpolate: "step-after", strokeWidth: 2 },
    encoding: {
      x: { field: "ms", type: "quantitative", scale: { type: "log", nice: false }, title: "latency from intended send time (ms, log scale)" },
      y: { field: "fraction", type: "quantitative", title: "fraction of requests", axis: { format: "%" } },
      color: { field: "run", type: "nominal", title: null },
    },
  } as Spec;
}

/** Per second: requests completed and errors, and the p50/p99 latency of what completed. */
export function timeSeriesChart(rows: readonly SecondRow[], title: string): Spec {
  const throughput = rows.flatMap((r) => [{ second: r.second, what: "completed/s", value: r.completed }, { second: r.second, what: "sent/s", value: r.sent }, { second: r.second, what: "errors/s", value: r.errors }]);
  const latency = rows.filter((r) => r.completed > 0).flatMap((r) => [{ second: r.second, what: "p50", value: r.p50Ms }, { second: r.second, what: "p99", value: r.p99Ms }]);
  return {
    title,
    // Each panel has its own colours and legend.
    resolve: { scale: { color: "independent" }, legend: { color: "independent" } },
    vconcat: [
      { width: 560, height: 160, data: { values: throughput }, mark: { type: "line", point: { size: 18 } }, encoding: { x: { field: "second", type: "quantitative", title: null }, y: { field: "value", type: "quantitative", title: "requests per second" }, color: { field: "what", type: "nominal", title: null, scale: { domain: ["sent/s", "completed/s", "errors/s"], range: ["#9ecae9", "#4c78a8", "#e45756"] } } } },
      { width: 560, height: 160, data: { values: latency }, mark: { type: "line", point: { size: 18 } }, encoding: { x: { field: "second", type: "quantitative", title: "second of the run" }, y: { field: "value", type: "quantitative", title: "latency of requests done (ms)" }, color: { field: "what", type: "nominal", title: null, scale: { domain: ["p50", "p99"], range: ["#54a24b", "#f58518"] } } } },
    ],
  } as Spec;
}

/** A sweep: latency percentiles vs offered load, and throughput and goodput vs load. */
export function sweepCharts(levels: readonly { load: number; summary: Summary }[], loadTitle: string): { latency: Spec; throughput: Spec } {
  const lat = levels.flatMap(({ load, summary: s }) => (["p50", "p90", "p99"] as const).map((p) => ({ load, percentile: p, ms: s.latencyMs.total[p] })));
  const tp = levels.flatMap(({ load, summary: s }) => [{ load, what: "throughput (images/s)", value: s.throughput.imagesPerS }, { load, what: "goodput (images/s within SLO)", value: s.goodput.imagesPerS }]);
  return {
    latency: { title: `Latency vs ${loadTitle}`, width: 520, height: 300, data: { values: lat }, mark: { type: "line", point: true, strokeWidth: 2 }, encoding: { x: { field: "load", type: "quantitative", title: loadTitle }, y: { field: "ms", type: "quantitative", title: "latency from intended send (ms)" }, color: { field: "percentile", type: "nominal", title: null } } } as Spec,
    throughput: { title: `Throughput vs ${loadTitle}`, width: 520, height: 300, data: { values: tp }, mark: { type: "line", point: true, strokeWidth: 2 }, encoding: { x: { field: "load", type: "quantitative", title: loadTitle }, y: { field: "value", type: "quantitative", title: "images per second" }, color: { field: "what", type: "nominal", title: null } } } as Spec,
  };
}
