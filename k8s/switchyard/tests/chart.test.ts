import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { readEnv } from "@switchyard/config";
import { GATEWAY_ENV, gatewayConfigSchema } from "@switchyard/gateway";
import { SCHEDULER_ENV, resolveSchedulerConfig } from "@switchyard/scheduler";
import { WORKER_ENV, resolveWorkerConfig } from "@switchyard/worker";
import { type K8sObject, checkRelease, podTemplate, workloads } from "./checks";

/**
 * The Helm chart, checked offline (#13): `helm lint --strict` over every ci/ value set;
 * `helm template` validated strictly against Kubernetes 1.30 and 1.37 schemas
 * (kubernetes-validate); the rendered objects checked for the classes of mistake users
 * of other inference charts report (checks.ts); every container's command and
 * environment accepted by its service's own config schema; bad value files refused
 * with a message naming the value. `.ci/install-tools.sh` installs helm and
 * kubernetes-validate; without them these tests are skipped, except with
 * SWITCHYARD_ECOSYSTEM_REQUIRED=1 (CI), where they fail.
 */
const CHART = fileURLToPath(new URL("..", import.meta.url));
const REQUIRED = process.env.SWITCHYARD_ECOSYSTEM_REQUIRED === "1";
const KUBE_VERSIONS = ["1.30.0", "1.37.0"];

function tool(name: string, cached: string): string | undefined {
  const onPath = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim();
  if (onPath) return onPath;
  const home = process.env.HOME ?? "/root";
  const p = join(process.env.SWITCHYARD_TOOLS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(home, ".cache"), "switchyard-tools"), cached);
  return spawnSync(p, ["version"]).status === 0 || spawnSync(p, ["--version"]).status === 0 ? p : undefined;
}
const HELM = tool("helm", "go-bin/helm");
const VALIDATE = tool("kubernetes-validate", "bin/kubernetes-validate");
if (REQUIRED && (!HELM || !VALIDATE)) throw new Error(`helm and kubernetes-validate are required (SWITCHYARD_ECOSYSTEM_REQUIRED=1) but ${!HELM ? "helm" : "kubernetes-validate"} is not installed: run bash .ci/install-tools.sh`);

const VALUE_SETS = readdirSync(join(CHART, "ci")).filter((f) => f.endsWith(".yaml")).sort();
const BAD = readdirSync(join(CHART, "tests/bad")).filter((f) => f.endsWith(".yaml")).sort();

function helm(...args: string[]) {
  return spawnSync(HELM!, args, { encoding: "utf8", cwd: CHART });
}

function render(values: string, kube = "1.30.0", extra: string[] = []): { text: string; objects: K8sObject[] } {
  const r = helm("template", "rel", ".", "--namespace", "serving", "--kube-version", kube, "-f", join("ci", values), ...extra);
  if (r.status !== 0) throw new Error(`helm template -f ci/${values} failed:\n${r.stderr}`);
  const docs = parseAllDocuments(r.stdout);
  // Duplicate keys and other YAML errors are mistakes even where Kubernetes would take the last value.
  const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
  if (errors.length > 0) throw new Error(`helm template -f ci/${values} rendered invalid YAML:\n${errors.join("\n")}`);
  const objects = docs.map((d) => d.toJS() as K8sObject).filter((o) => o?.kind);
  return { text: r.stdout, objects };
}

const env = (objs: K8sObject[], component: string) =>
  workloads(objs).filter((w) => podTemplate(w).metadata?.labels?.["app.kubernetes.io/component"] === component);

type Containers = ReturnType<typeof podTemplate>["spec"]["containers"];

/** What the kubelet puts in a resourceFieldRef variable: the named container's CPU in divisor units, rounded up. */
function kubeletResource(containers: Containers, self: string, ref: { containerName?: string; resource?: string; divisor?: string }): string | undefined {
  const [kind, name] = (ref.resource ?? "").split(".");
  const q = containers.find((c) => c.name === (ref.containerName ?? self))?.resources?.[kind as "requests" | "limits"]?.[name!];
  if (name !== "cpu" || q === undefined) return undefined;
  const cores = (s: string) => (s.endsWith("m") ? Number(s.slice(0, -1)) / 1000 : Number(s));
  return String(Math.ceil(cores(String(q)) / cores(ref.divisor ?? "1")));
}

describe.skipIf(!HELM || !VALIDATE)("Helm chart k8s/switchyard", () => {
  it.each(VALUE_SETS)("lints strictly with ci/%s", (values) => {
    const r = helm("lint", "--strict", ".", "--kube-version", "1.30.0", "-f", join("ci", values));
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it.each(VALUE_SETS.flatMap((v) => KUBE_VERSIONS.map((k) => [v, k])))("renders ci/%s into objects Kubernetes %s accepts (strict schemas)", (values, kube) => {
    const { text } = render(values, kube, ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]);
    const r = spawnSync(VALIDATE!, ["--strict", "-k", kube, "--quiet", "-"], { input: text, encoding: "utf8" });
    // CRDs (ServiceMonitor, ScaledObject) have no schema there: they only warn.
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/ERROR|failed/i);
  });

  it.each(VALUE_SETS)("renders ci/%s with every selector, Service, budget, autoscaler and probe pointing at something real", (values) => {
    const { objects } = render(values, "1.30.0", ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]);
    expect(checkRelease(objects)).toEqual([]);
  });

  it("catches the mistakes other charts shipped: a PDB over the namespace, an HPA at a missing Deployment, a selector that matches nothing", () => {
    const { objects } = render("default-values.yaml");
    const pdb = structuredClone(objects.find((o) => o.kind === "PodDisruptionBudget" && o.metadata.name.endsWith("-gateway"))!);
    (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels = { "app.kubernetes.io/instance": "rel" };
    const hpa: K8sObject = { apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", metadata: { name: "rel-switchyard" }, spec: { scaleTargetRef: { kind: "Deployment", name: "rel-switchyard" } } };
    const svc = structuredClone(objects.find((o) => o.kind === "Service" && o.metadata.name.endsWith("-gateway"))!);
    (svc.spec as { selector: Record<string, string> }).selector = { "app.kubernetes.io/name": "switchyard", "app.kubernetes.io/component": "gateways" };
    const broken = [...objects.filter((o) => o.metadata.name !== pdb.metadata.name || o.kind !== pdb.kind).filter((o) => o.metadata.name !== svc.metadata.name || o.kind !== "Service"), pdb, hpa, svc];
    const problems = checkRelease(broken);
    expect(problems).toContainEqual(expect.stringMatching(/^PodDisruptionBudget\/rel-switchyard-gateway: selector .* matches the pods of Deployment\/rel-switchyard-gateway, Deployment\/rel-switchyard-g0-scheduler, StatefulSet\/rel-switchyard-g0-worker/));
    expect(problems).toContainEqual("HorizontalPodAutoscaler/rel-switchyard: scaleTargetRef Deployment/rel-switchyard is not rendered");
    expect(problems).toContainEqual(expect.stringMatching(/^Service\/rel-switchyard-gateway: selector .* matches no pods/));
    // A probe on a port nobody declares, and a StatefulSet whose peers could not find each other.
    const sts = structuredClone(objects.find((o) => o.kind === "StatefulSet")!);
    podTemplate(sts).spec.containers[0]!.readinessProbe = { grpc: { port: 50099 } };
    const headless = structuredClone(objects.find((o) => o.kind === "Service" && o.metadata.name === (sts.spec as { serviceName: string }).serviceName)!);
    delete (headless.spec as { publishNotReadyAddresses?: boolean }).publishNotReadyAddresses;
    const more = checkRelease([...objects.filter((o) => o.metadata.name !== sts.metadata.name), sts, headless]);
    expect(more).toContainEqual(`StatefulSet/${sts.metadata.name} container worker: readinessProbe probes port 50099, which no container port declares`);
    expect(more).toContainEqual(expect.stringMatching(/does not publish not-ready addresses/));
  });

  it.each(VALUE_SETS)("gives every container (ci/%s) a command and environment its service's config schema accepts", (values) => {
    const { objects } = render(values);
    const seen: string[] = [];
    for (const w of workloads(objects)) {
      const component = podTemplate(w).metadata!.labels!["app.kubernetes.io/component"]!;
      for (const c of podTemplate(w).spec.containers) {
        expect(c.args, `${w.metadata.name}: the entry point's role`).toEqual([component]);
        // The environment as the kubelet builds it: Downward API values and $(VAR) references resolved.
        const vars: Record<string, string> = {};
        for (const e of c.env ?? []) {
          let v = e.value;
          if (v === undefined && e.valueFrom) {
            const field = (e.valueFrom.fieldRef as { fieldPath?: string } | undefined)?.fieldPath;
            const resource = e.valueFrom.resourceFieldRef as { containerName?: string; resource?: string; divisor?: string } | undefined;
            v = field === "metadata.name" ? `${w.metadata.name}-0` : field === "metadata.namespace" ? "serving" : e.valueFrom.secretKeyRef ? "secret-from-the-cluster-0123456789" : resource ? kubeletResource(podTemplate(w).spec.containers, c.name, resource) : undefined;
          }
          expect(v, `${w.metadata.name}: ${e.name} has a value`).toBeDefined();
          vars[e.name] = v!.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, n: string) => vars[n] ?? `$(${n})`);
        }
        const map = component === "gateway" ? GATEWAY_ENV : component === "scheduler" ? SCHEDULER_ENV : WORKER_ENV;
        for (const name of Object.keys(vars).filter((n) => n.startsWith("SWITCHYARD_"))) expect(Object.keys(map), `${w.metadata.name}: ${name} is an option of the ${component}`).toContain(name);
        if (component === "gateway") gatewayConfigSchema.parse(readEnv(GATEWAY_ENV, vars));
        else if (component === "scheduler") resolveSchedulerConfig(vars);
        else {
          const cfg = resolveWorkerConfig(vars);
          expect(cfg.advertiseHost).toBe(`${cfg.id}.${(w.spec as { serviceName: string }).serviceName}.serving.svc.cluster.local`);
        }
        seen.push(component);
      }
    }
    expect(new Set(seen)).toEqual(new Set(["gateway", "scheduler", "worker"]));
  });

  it("renders one scheduler and one worker StatefulSet per serving group, joined by SWITCHYARD_GROUP", () => {
    const { objects } = render("production-values.yaml");
    const group = (w: K8sObject) => podTemplate(w).spec.containers[0]!.env!.find((e) => e.name === "SWITCHYARD_GROUP")?.value;
    expect(env(objects, "scheduler").map(group).sort()).toEqual(["a100-east", "a100-west"]);
    expect(env(objects, "worker").map(group).sort()).toEqual(["a100-east", "a100-west"]);
    for (const sts of objects.filter((o) => o.kind === "StatefulSet")) {
      const spec = sts.spec as { replicas: number; podManagementPolicy: string };
      expect(spec).toMatchObject({ replicas: 4, podManagementPolicy: "Parallel" });
      const tpl = podTemplate(sts);
      expect(tpl.spec.containers[0]!.resources!.limits!["nvidia.com/gpu"]).toBe(1);
      expect((tpl.spec as { nodeSelector?: Record<string, string> }).nodeSelector?.pool).toBe(group(sts));
    }
    for (const d of env(objects, "scheduler")) expect((d.spec as { strategy: { type: string } }).strategy.type).toBe("Recreate");
    // Only a group's own pods reach its workers' data plane.
    const np = objects.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "rel-switchyard-a100-east-worker")!;
    const peers = (np.spec as { ingress: { from: { podSelector: { matchLabels: Record<string, string> } }[] }[] }).ingress[0]!.from.map((f) => f.podSelector.matchLabels["switchyard.io/group"]);
    expect(peers).toEqual(["a100-east", "a100-east"]);
    // The row exchange's own port: declared, given to the worker, and reachable from the group's workers only.
    const rules = (np.spec as { ingress: { from: { podSelector: { matchLabels: Record<string, string> } }[]; ports: { port: string }[] }[] }).ingress;
    const exchangeRule = rules.find((r) => r.ports.some((p) => p.port === "exchange"))!;
    expect(exchangeRule.from.map((f) => [f.podSelector.matchLabels["app.kubernetes.io/component"], f.podSelector.matchLabels["switchyard.io/group"]])).toEqual([["worker", "a100-east"]]);
    const worker = podTemplate(env(objects, "worker")[0]!).spec.containers[0]!;
    expect(worker.ports!.find((p) => p.name === "exchange")?.containerPort).toBe(50062);
    expect(worker.env!.filter((e) => e.name.startsWith("SWITCHYARD_EXCHANGE_")).map((e) => [e.name, e.value])).toEqual([["SWITCHYARD_EXCHANGE_TRANSPORT", "tcp"], ["SWITCHYARD_EXCHANGE_PORT", "50062"]]);
    // exchangeTransport grpc: no port, and rows over the data port.
    const grpcOnly = render("production-values.yaml", "1.30.0", ["--set", "worker.exchangeTransport=grpc"]).objects;
    const w2 = podTemplate(env(grpcOnly, "worker")[0]!).spec.containers[0]!;
    expect(w2.ports!.map((p) => p.name)).toEqual(["data", "metrics"]);
    expect(w2.env!.filter((e) => e.name.startsWith("SWITCHYARD_EXCHANGE_")).map((e) => [e.name, e.value])).toEqual([["SWITCHYARD_EXCHANGE_TRANSPORT", "grpc"]]);
  });

  it("sizes the workers' ONNX Runtime threads for their CPU request (the node's cores without one), and runs them where the values say", () => {
    const cores = (objects: K8sObject[]) => {
      const c = podTemplate(env(objects, "worker")[0]!).spec.containers[0]!;
      const e = c.env!.find((x) => x.name === "SWITCHYARD_WORKER_CORES");
      return e && { ref: e.valueFrom, kubelet: kubeletResource(podTemplate(env(objects, "worker")[0]!).spec.containers, c.name, e.valueFrom!.resourceFieldRef as object) };
    };
    expect(cores(render("default-values.yaml").objects)).toEqual({ ref: { resourceFieldRef: { containerName: "worker", resource: "requests.cpu", divisor: "1" } }, kubelet: "2" });
    expect(cores(render("default-values.yaml", "1.30.0", ["--set", "worker.resources.requests.cpu=1500m"]).objects)?.kubelet).toBe("2");
    expect(cores(render("keda-cpu-values.yaml").objects)?.kubelet).toBe("4");
    expect(cores(render("default-values.yaml", "1.30.0", ["--set", "worker.resources.requests.cpu=null"]).objects)).toBeUndefined();
    expect(cores(render("default-values.yaml", "1.30.0", ["--set", "worker.resources=null"]).objects)).toBeUndefined();
    // and where they run: the CPU unless the values say cuda
    const provider = (objects: K8sObject[]) => podTemplate(env(objects, "worker")[0]!).spec.containers[0]!.env!.find((e) => e.name === "SWITCHYARD_EXECUTION_PROVIDER")?.value;
    expect(provider(render("default-values.yaml").objects)).toBe("cpu");
    expect(provider(render("default-values.yaml", "1.30.0", ["--set", "worker.executionProvider=cuda"]).objects)).toBe("cuda");
  });

  it("renders ServiceMonitor, PodMonitor and PrometheusRule only where the Prometheus Operator's API exists", () => {
    const kinds = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];
    expect(render("default-values.yaml").objects.filter((o) => kinds.includes(o.kind))).toEqual([]);
    const apis = kinds.flatMap((k) => ["--api-versions", `monitoring.coreos.com/v1/${k}`]);
    expect(render("default-values.yaml", "1.30.0", apis).objects.filter((o) => kinds.includes(o.kind)).map((o) => o.kind).sort()).toEqual(["PodMonitor", "PrometheusRule", "ServiceMonitor"]);
  });

  it("ships a dashboard and alerts that query only series the services export", () => {
    const apis = ["--api-versions", "monitoring.coreos.com/v1/PrometheusRule"];
    const { objects } = render("production-values.yaml", "1.30.0", apis);
    const dashboard = JSON.parse((objects.find((o) => o.kind === "ConfigMap") as unknown as { data: Record<string, string> }).data["switchyard.json"]!) as { panels: { targets: { expr: string }[] }[] };
    const rules = (objects.find((o) => o.kind === "PrometheusRule")!.spec as { groups: { rules: { alert: string; expr: string }[] }[] }).groups[0]!.rules;
    expect(rules.map((r) => r.alert)).toEqual(["SwitchyardSloBurn", "SwitchyardWorkerMissing", "SwitchyardWorkerMissing", "SwitchyardExpertImbalance"]);
    expect(rules[1]!.expr).toContain('group="a100-east"}) < 4');
    const exprs = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...rules.map((r) => r.expr)];
    const names = new Set(exprs.flatMap((e) => e.match(/switchyard_[a-z0-9_]+/g) ?? []).map((n) => n.replace(/_(bucket|count|sum)$/, "")));
    const sources = ["libs/gateway/src/admission.ts", "libs/scheduler/src/metrics.ts", "libs/worker/src/metrics.ts"].map((f) => readFileSync(join(CHART, "../..", f), "utf8")).join("\n");
    expect(names.size).toBeGreaterThan(8);
    for (const n of names) expect(sources, `${n} is exported by a service`).toContain(`"${n}"`);
  });

  it("defaults to a secure, complete deployment", () => {
    const { objects } = render("default-values.yaml");
    const kinds = objects.map((o) => o.kind).sort();
    expect(kinds).toEqual(["ConfigMap", "Deployment", "Deployment", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget", "PodDisruptionBudget", "PodDisruptionBudget", "Secret", "Service", "Service", "ServiceAccount", "StatefulSet"]);
    // the data plane is authenticated by default: a generated cluster secret, given to schedulers and workers
    const secret = objects.find((o) => o.kind === "Secret")!;
    expect(secret.metadata.name).toBe("rel-switchyard-cluster-secret");
    const value = Buffer.from((secret as unknown as { data: Record<string, string> }).data["cluster-secret"]!, "base64").toString();
    expect(value).toMatch(/^[A-Za-z0-9]{32}$/);
    for (const role of ["scheduler", "worker"]) {
      for (const w of env(objects, role)) {
        expect(podTemplate(w).spec.containers[0]!.env?.find((x) => x.name === "SWITCHYARD_CLUSTER_SECRET")?.valueFrom).toEqual({ secretKeyRef: { name: "rel-switchyard-cluster-secret", key: "cluster-secret" } });
      }
    }
    for (const w of workloads(objects)) {
      const sc = podTemplate(w).spec.securityContext!;
      expect(sc).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      expect((podTemplate(w).spec as { automountServiceAccountToken?: boolean }).automountServiceAccountToken).toBe(false);
    }
  });

  it("connects each role as its own NATS user, and gives schedulers and workers (not gateways) the cluster secret, all from Secrets (ci/production-values.yaml)", () => {
    const { objects } = render("production-values.yaml");
    for (const role of ["gateway", "scheduler", "worker"]) {
      for (const w of env(objects, role)) {
        const e = podTemplate(w).spec.containers[0]!.env ?? [];
        const by = (n: string) => e.find((x) => x.name === n);
        expect(by("SWITCHYARD_NATS_USER")?.value).toBe(`switchyard-${role}`);
        expect(by("SWITCHYARD_NATS_PASSWORD")?.valueFrom).toEqual({ secretKeyRef: { name: "switchyard-nats-users", key: role } });
        if (role === "gateway") expect(by("SWITCHYARD_CLUSTER_SECRET")).toBeUndefined();
        else expect(by("SWITCHYARD_CLUSTER_SECRET")?.valueFrom).toEqual({ secretKeyRef: { name: "switchyard-cluster-secret", key: "cluster-secret" } });
        if (role === "gateway") expect(by("SWITCHYARD_API_TOKENS_FILE")?.value).toBe("/etc/switchyard/tokens/tokens.json");
      }
    }
  });

  it.each(BAD)("refuses tests/bad/%s with a message naming the value", (file) => {
    const text = readFileSync(join(CHART, "tests/bad", file), "utf8");
    const expected = new RegExp(/^# expect: (.*)$/m.exec(text)![1]!);
    const r = helm("template", "rel", ".", "--kube-version", "1.30.0", "-f", join("tests/bad", file));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(expected);
  });
});

describe("chart README", () => {
  it("lists every value of values.yaml", () => {
    const values = parseAllDocuments(readFileSync(join(CHART, "values.yaml"), "utf8"))[0]!.toJS() as Record<string, unknown>;
    const readme = readFileSync(join(CHART, "README.md"), "utf8");
    const keys: string[] = [];
    const walk = (v: unknown, path: string[]) => {
      if (path.length > 0) keys.push(path.join("."));
      if (v && typeof v === "object" && !Array.isArray(v) && !["resources", "podSecurityContext", "securityContext"].includes(path[path.length - 1] ?? "")) {
        for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
      }
    };
    walk(values, []);
    const missing = keys.filter((k) => !readme.includes(`\`${k}\``) && !keys.some((other) => other.startsWith(`${k}.`)));
    expect(missing).toEqual([]);
    for (const k of ["name", "workers", "nodeSelector", "tolerations"]) expect(readme).toContain(`\`groups[].${k}\``);
  });
});
