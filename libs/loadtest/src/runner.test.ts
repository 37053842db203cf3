import { describe, expect, it } from "vitest";
import { arrivalSchedule } from "./arrivals";
import type { Driver } from "./drivers";
import { percentiles } from "./histogram";
import { runLoad } from "./runner";
import { parseWorkload, requestStream } from "./workload";

/**
 * A single-server FIFO "server" (in memory): each request takes `serviceMs`; during
 * [stallFromMs, stallFromMs + stallMs) of the run it serves nothing.
 */
function fifoServer(o: { serviceMs: number; stallFromMs?: number; stallMs?: number }): Driver {
  const t0 = performance.now();
  let freeAt = 0;
  return {
    send(_spec, marks) {
      const now = performance.now() - t0;
      let start = Math.max(now, freeAt);
      if (o.stallMs && start >= o.stallFromMs! && start < o.stallFromMs! + o.stallMs) start = o.stallFromMs! + o.stallMs;
      freeAt = start + o.serviceMs;
      marks.accepted();
      return new Promise((r) => setTimeout(() => {
        marks.progress();
        r({ status: "ok", images: 1 });
      }, freeAt - now));
    },
    close: () => undefined,
  };
}

const next = requestStream(parseWorkload({ classes: [{ name: "c", steps: 4 }] }));

describe("load runner", () => {
  it("measures from the intended send time: a server that stalls 2 s shows in the percentiles (no coordinated omission)", async () => {
    const offsetsMs = arrivalSchedule({ kind: "constant", rate: 25, durationS: 4 });
    const stalled = await runLoad({ mode: { kind: "open", offsetsMs }, driver: fifoServer({ serviceMs: 10, stallFromMs: 1000, stallMs: 2000 }), next, durationS: 4 });
    const calm = await runLoad({ mode: { kind: "open", offsetsMs }, driver: fifoServer({ serviceMs: 10 }), next, durationS: 4 });
    const s = percentiles(stalled.histograms.total);
    const c = percentiles(calm.histograms.total);
    // Half the requests were intended during the stall: they waited up to 2 s.
    expect(stalled.records).toHaveLength(100);
    expect(s.p50).toBeGreaterThan(300);
    expect(s.p99).toBeGreaterThan(1800);
    expect(s.max).toBeLessThan(2300);
    // The calm run shows no stall: its tail stays far below the stalled one's (relative, so
    // a loaded machine's timer delays — 220 ms once in a full CI run — do not fail it).
    expect(c.p99).toBeLessThan(s.p99 / 4);
    // The open loop kept sending on schedule through the stall (the client did not back off).
    const sentDuringStall = stalled.records.filter((r) => r.sentMs >= 1000 && r.sentMs < 3000).length;
    expect(sentDuringStall).toBeGreaterThanOrEqual(49);
    expect(percentiles(stalled.histograms.clientQueue).p99).toBeLessThan(s.p99 / 4);
  }, 20_000);

  it("reports client-side queueing apart, and still counts it in the latency", async () => {
    // 20 requests/s offered to a client allowed one request in flight at 100 ms each: the client queue grows.
    const offsetsMs = arrivalSchedule({ kind: "constant", rate: 20, durationS: 1 });
    const r = await runLoad({ mode: { kind: "open", offsetsMs }, driver: fifoServer({ serviceMs: 100 }), next, durationS: 1, maxInflight: 1 });
    const q = percentiles(r.histograms.clientQueue);
    const t = percentiles(r.histograms.total);
    expect(q.max).toBeGreaterThan(900); // request i is intended at 50·i ms and sent at 100·i ms
    expect(t.max).toBeGreaterThan(q.max + 90);
    for (const rec of r.records) expect(rec.doneMs - rec.intendedMs).toBeGreaterThanOrEqual(rec.sentMs - rec.intendedMs);
  }, 20_000);

  it("closed loop holds the concurrency; warm-up and cool-down are left out by intended start", async () => {
    let inflight = 0;
    let most = 0;
    const driver: Driver = {
      async send() {
        most = Math.max(most, ++inflight);
        await new Promise((r) => setTimeout(r, 20));
        inflight--;
        return { status: "ok", images: 2 };
      },
      close: () => undefined,
    };
    const r = await runLoad({ mode: { kind: "closed", concurrency: 3 }, driver, next, durationS: 1.2, warmupS: 0.3, cooldownS: 0.3 });
    expect(most).toBe(3);
    expect(r.records.some((x) => !x.measured && x.intendedMs < 300)).toBe(true);
    expect(r.records.some((x) => !x.measured && x.intendedMs >= 900)).toBe(true);
    expect(r.records.filter((x) => x.measured).every((x) => x.intendedMs >= 300 && x.intendedMs < 900)).toBe(true);
    expect(r.histograms.total.totalCount).toBe(r.records.filter((x) => x.measured).length);
  });

  it("--until-stable: stops sending once the last 3 finished windows agree, long before the duration", async () => {
    const t0 = performance.now();
    const r = await runLoad({ mode: { kind: "closed", concurrency: 2 }, driver: fifoServer({ serviceMs: 10 }), next, durationS: 20, untilStable: { windowS: 0.25, pct: 25 } });
    const s = (performance.now() - t0) / 1000;
    expect(r.stoppedStable).toBe(true);
    expect(s).toBeLessThan(5);
    expect(r.measuredS).toBeLessThan(5);
    expect(r.interrupted).toBe(false);
    expect(r.records.every((x) => x.status === "ok")).toBe(true);
  }, 20_000);

  it("stops on abort and keeps what was measured; shards split a schedule between processes", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 500);
    const offsetsMs = arrivalSchedule({ kind: "constant", rate: 20, durationS: 10 });
    const r = await runLoad({ mode: { kind: "open", offsetsMs }, driver: fifoServer({ serviceMs: 5 }), next, durationS: 10, signal: ac.signal });
    expect(r.interrupted).toBe(true);
    expect(r.records.length).toBeGreaterThan(5);
    expect(r.records.length).toBeLessThan(20);
    const shards = await Promise.all([0, 1, 2].map((index) => runLoad({ mode: { kind: "open", offsetsMs: offsetsMs.slice(0, 30) }, driver: fifoServer({ serviceMs: 1 }), next: requestStream(parseWorkload({ classes: [{ name: "c" }] })), durationS: 10, shard: { index, of: 3 } })));
    expect(shards.map((s) => s.records.length)).toEqual([10, 10, 10]);
    expect(shards.flatMap((s) => s.records.map((x) => x.index)).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  }, 20_000);
});
