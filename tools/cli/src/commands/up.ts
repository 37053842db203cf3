import { startEmbeddedCluster } from "@switchyard/cluster";
import { num, str } from "../args";

export const UP_HELP = `switchyard up [options]
  Brings up a local cluster serving the model and prints its endpoint; Ctrl-C stops it.
  --workers N        workers (default 2)
  --host H           listen address (default 127.0.0.1)
  --port P           gRPC port of the gateway (default 50051; 0 = any free port)
  --metrics-port P   Prometheus /metrics port (default 9464)
  --embedded         one process over the in-memory bus (the default when no
                     nats-server is installed)
  --model DIR        model directory (default: the bundled model)`;

export const DEFAULT_GATEWAY_PORT = 50051;
export const DEFAULT_METRICS_PORT = 9464;

export async function runUp(flags: Record<string, unknown>, modelDir: string): Promise<void> {
  const workers = num(flags, "workers") ?? 2;
  const port = num(flags, "port") ?? DEFAULT_GATEWAY_PORT;
  const metricsPort = num(flags, "metrics-port") ?? DEFAULT_METRICS_PORT;
  const host = str(flags, "host") ?? "127.0.0.1";
  console.log(`starting embedded cluster: gateway + scheduler + ${workers} workers in one process (in-memory bus)`);
  const cluster = await startEmbeddedCluster({ modelDir, workers, host, port, metricsPort, log: (m) => console.log(m) });
  console.log(`switchyard is serving ${cluster.gateway.gateway ? "the model" : ""} on ${cluster.address} (gRPC: switchyard.v1.Switchyard, grpc.health.v1, reflection)`);
  console.log(`metrics: http://${host}:${cluster.gateway.metricsPort}/metrics`);
  console.log(`try:     npx switchyard generate --server ${cluster.address} --label 3 --count 16 --out grid.png`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  console.log("stopping…");
  await cluster.stop();
}
