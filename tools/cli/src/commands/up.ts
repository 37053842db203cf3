import { natsServerAvailable } from "@switchyard/bus";
import { startEmbeddedCluster, startProcessCluster } from "@switchyard/cluster";
import { DEFAULT_HTTP_PORT } from "@switchyard/gateway";
import { DEFAULT_MAX_TICK_ROWS } from "@switchyard/contract";
import { DEFAULT_WARM_UP_ROUNDS, parseExpertBudget } from "@switchyard/worker";
import { createPolicy } from "@switchyard/expert-cache";
import { Code, SwitchyardError } from "@switchyard/errors";
import { num, str } from "../args";

export const UP_HELP = `switchyard up [options]
  Brings up a local cluster serving the model and prints its endpoint; Ctrl-C stops it.
  --workers N        workers per serving group (default 2)
  --groups G         serving groups (default 1): each a scheduler and its own N workers
                     holding one copy of the model; the gateway spreads work over them
                     (needs nats-server or --nats)
  --host H           listen address (default 127.0.0.1)
  --port P           gRPC port of the gateway (default 50051; 0 = any free port)
  --http-port P      KServe v2 REST + OpenAI-style images API (default 8000; "off" = none)
  --metrics-port P   Prometheus /metrics port (default 9464)
  --embedded         one process over the in-memory bus (the default when no
                     nats-server is installed)
  --nats URL         use a running NATS server instead of starting nats-server
                     (separate processes are supervised: one that dies is restarted,
                     and the requests a dead scheduler held are resumed)
  --expert-budget B  run each worker's experts on an expert device under budget B:
                     "50%" of the experts it holds, or bytes ("12MiB"); default all resident
  --cache-policy P   lru | lfu | predictive (default predictive)
  --verbose          print the services' logs
  --model DIR        model directory (default: the bundled model)`;

export const DEFAULT_GATEWAY_PORT = 50051;
export const DEFAULT_METRICS_PORT = 9464;

export async function runUp(flags: Record<string, unknown>, modelDir: string): Promise<void> {
  const workers = num(flags, "workers") ?? 2;
  const groups = num(flags, "groups") ?? 1;
  if (!Number.isInteger(groups) || groups < 1 || groups > 16) throw new SwitchyardError(`--groups ${groups} must be an integer >= 1 and <= 16`, Code.InvalidArgument, { field: "groups" });
  const port = num(flags, "port") ?? DEFAULT_GATEWAY_PORT;
  const metricsPort = num(flags, "metrics-port") ?? DEFAULT_METRICS_PORT;
  const httpPort = flags["http-port"] === "off" ? undefined : (num(flags, "http-port") ?? DEFAULT_HTTP_PORT);
  const host = str(flags, "host") ?? "127.0.0.1";
  const nats = str(flags, "nats");
  const embedded = flags.embedded === true || (!nats && !natsServerAvailable());
  if (embedded && groups > 1) throw new SwitchyardError(`--groups ${groups} needs separate processes: install nats-server or pass --nats URL (the embedded mode serves one group)`, Code.FailedPrecondition, { field: "groups" });
  const budgetText = str(flags, "expert-budget");
  const budget = budgetText !== undefined ? parseExpertBudget(budgetText, "--expert-budget") : undefined;
  const policy = str(flags, "cache-policy") ?? "predictive";
  createPolicy(policy); // names the field when unknown
  const cacheEnv: Record<string, string> = budget ? { SWITCHYARD_EXPERT_BUDGET: budgetText!, SWITCHYARD_CACHE_POLICY: policy } : {};
  let stopCluster: () => Promise<void>;
  let address: string;
  let mPort: number | undefined;
  let hPort: number | undefined;
  if (embedded) {
    if (flags.embedded !== true) console.log("nats-server is not installed: running the embedded single-process mode (in-memory bus)");
    console.log(`starting embedded cluster: gateway + scheduler + ${workers} workers in one process`);
    const c = await startEmbeddedCluster({ modelDir, workers, host, port, metricsPort, ...(httpPort !== undefined ? { httpPort } : {}), log: (m) => console.log(m), warmUp: { rows: DEFAULT_MAX_TICK_ROWS, rounds: DEFAULT_WARM_UP_ROUNDS }, ...(budget ? { cache: { budget, policy } } : {}) });
    ({ address } = c);
    mPort = c.gateway.metricsPort;
    hPort = c.gateway.httpPort;
    stopCluster = () => c.stop();
  } else {
    const ws = `${workers} worker${workers === 1 ? "" : "s"}`;
    const what = groups > 1 ? `${groups} serving groups of a scheduler + ${ws}` : `scheduler + ${ws}`;
    console.log(`starting local cluster: ${nats ? `NATS at ${nats}` : "nats-server"} + gateway + ${what} (separate processes)`);
    const verbose = flags.verbose === true;
    // Supervised: a service (or the nats-server started here) that dies is restarted, and the
    // requests a scheduler held are resumed from the request journal.
    const c = await startProcessCluster({
      modelDir, workers, groups, host, port, metricsPort, ...(httpPort !== undefined ? { httpPort } : {}), env: cacheEnv, ...(nats ? { nats } : {}),
      restart: true, onRestart: (l) => console.log(`supervisor: ${l}`), ...(verbose ? { log: (l: string) => console.log(l) } : {}),
      // The nats-server started here knows one generated user per role, each with its permissions.
      ...(nats ? {} : { natsUsers: true as const }),
      // Every data-plane call carries a generated cluster secret; the workers refuse calls without it.
      clusterSecret: true,
    });
    ({ address } = c);
    mPort = c.metricsPort;
    hPort = c.httpPort;
    console.log(`NATS: ${c.nats}${c.natsUsers ? " (a user per role; anonymous clients are refused)" : ""}`);
    if (c.natsUsers) console.log(`operator: export SWITCHYARD_NATS=${c.nats} SWITCHYARD_NATS_USER=${c.natsUsers.operator.user} SWITCHYARD_NATS_PASSWORD=${c.natsUsers.operator.password}`);
    if (groups > 1) for (const g of c.groups) console.log(`group ${g.name}: scheduler + ${g.workers.map((w) => w.name).join(", ")}`);
    if (budget) console.log(`cache:   npx switchyard cache stats   (with the operator's variables above)`);
    stopCluster = () => c.stop();
  }
  console.log(`switchyard is serving on ${address} (gRPC: switchyard.v1.Switchyard, grpc.health.v1, reflection)`);
  if (hPort !== undefined) console.log(`HTTP:    http://${host}:${hPort} (KServe v2 REST /v2/models/…/infer, OpenAI-style POST /v1/images/generations)`);
  console.log(`metrics: http://${host}:${mPort}/metrics`);
  console.log(`try:     npx switchyard generate --server ${address} --label 3 --count 16 --out grid.png`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  console.log("stopping… (Ctrl-C again to stop at once)");
  // A second Ctrl-C: exit now (the exit takes the nats-server started here with it). Under
  // `npm start` one Ctrl-C comes twice, from the terminal and relayed by npm: a SIGINT
  // within a second of the first is that one.
  const firstAt = Date.now();
  process.on("SIGINT", () => {
    if (Date.now() - firstAt >= 1000) process.exit(130);
  });
  await stopCluster();
}
