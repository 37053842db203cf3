/**
 * Checks on a rendered release (`helm template` output) for the mistakes users of the
 * leading inference charts keep reporting: selectors that match no pods (vllm #37942),
 * an HPA aimed at a Deployment that does not exist (vllm PR #51664), a
 * PodDisruptionBudget that selects the whole namespace (production-stack #840, #861,
 * #606), probes on ports nobody listens on. Each returns what is wrong, in words.
 */

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}

type Labels = Record<string, string>;

interface Container {
  name: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: Record<string, unknown> }[];
  securityContext?: Record<string, unknown>;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
}
interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: { path: string; port: number | string };
  tcpSocket?: { port: number | string };
}
interface PodTemplate {
  metadata?: { labels?: Labels };
  spec: { containers: Container[]; securityContext?: Record<string, unknown>; volumes?: { name: string }[] };
}

export const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet"]);

export function workloads(objs: readonly K8sObject[]): K8sObject[] {
  return objs.filter((o) => WORKLOAD_KINDS.has(o.kind));
}

export function podTemplate(o: K8sObject): PodTemplate {
  return (o.spec as { template: PodTemplate }).template;
}

function matches(selector: Labels | undefined, labels: Labels | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false; // an empty selector is never what we mean
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function podsSelectedBy(objs: readonly K8sObject[], selector: Labels | undefined): K8sObject[] {
  return workloads(objs).filter((w) => matches(selector, podTemplate(w).metadata?.labels));
}

const id = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

/** Every problem found; [] when the release is sound. */
export function checkRelease(objs: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  for (const o of objs) names.set(id(o), (names.get(id(o)) ?? 0) + 1);
  for (const [n, k] of names) if (k > 1) problems.push(`${n} is rendered ${k} times`);

  for (const w of workloads(objs)) {
    const sel = (w.spec as { selector?: { matchLabels?: Labels } }).selector?.matchLabels;
    const tpl = podTemplate(w);
    if (!matches(sel, tpl.metadata?.labels)) problems.push(`${id(w)}: selector ${JSON.stringify(sel)} does not match its own pod labels`);
    // A workload's selector must not also select another workload's pods.
    for (const other of workloads(objs)) {
      if (other !== w && matches(sel, podTemplate(other).metadata?.labels)) problems.push(`${id(w)}: selector also matches the pods of ${id(other)}`);
    }
    const ports = new Map<string | number, number>();
    for (const c of tpl.spec.containers) for (const p of c.ports ?? []) {
      ports.set(p.containerPort, p.containerPort);
      if (p.name) ports.set(p.name, p.containerPort);
    }
    for (const c of tpl.spec.containers) {
      for (const [kind, probe] of [["startupProbe", c.startupProbe], ["readinessProbe", c.readinessProbe], ["livenessProbe", c.livenessProbe]] as const) {
        if (!probe) {
          problems.push(`${id(w)} container ${c.name}: no ${kind}`);
          continue;
        }
        const port = probe.grpc?.port ?? probe.httpGet?.port ?? probe.tcpSocket?.port;
        if (port === undefined || !ports.has(port)) problems.push(`${id(w)} container ${c.name}: ${kind} probes port ${String(port)}, which no container port declares`);
      }
      const sc = c.securityContext ?? {};
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${id(w)} container ${c.name}: root filesystem is writable`);
      if (sc.allowPrivilegeEscalation !== false) problems.push(`${id(w)} container ${c.name}: privilege escalation is allowed`);
      if (!((sc.capabilities as { drop?: string[] } | undefined)?.drop ?? []).includes("ALL")) problems.push(`${id(w)} container ${c.name}: capabilities are not all dropped`);
      if (!c.resources?.requests) problems.push(`${id(w)} container ${c.name}: no resource requests`);
    }
    if (tpl.spec.securityContext?.runAsNonRoot !== true) problems.push(`${id(w)}: pods may run as root (runAsNonRoot is not true)`);
    const volumes = new Set((tpl.spec.volumes ?? []).map((v) => v.name));
    for (const c of tpl.spec.containers) for (const m of (c as { volumeMounts?: { name: string }[] }).volumeMounts ?? []) {
      if (!volumes.has(m.name)) problems.push(`${id(w)} container ${c.name}: mounts volume ${m.name}, which the pod does not define`);
    }
  }

  for (const s of objs.filter((o) => o.kind === "Service")) {
    const spec = s.spec as { selector?: Labels; ports?: { name: string; targetPort?: string | number }[]; clusterIP?: string; publishNotReadyAddresses?: boolean };
    const pods = podsSelectedBy(objs, spec.selector);
    if (pods.length === 0) {
      problems.push(`${id(s)}: selector ${JSON.stringify(spec.selector)} matches no pods (it would have no endpoints)`);
      continue;
    }
    for (const p of spec.ports ?? []) {
      const target = p.targetPort ?? p.name;
      for (const w of pods) {
        const declared = podTemplate(w).spec.containers.flatMap((c) => c.ports ?? []);
        if (!declared.some((d) => d.name === target || d.containerPort === target)) problems.push(`${id(s)}: port ${p.name} targets ${String(target)}, which ${id(w)}'s pods do not declare`);
      }
    }
  }

  for (const sts of objs.filter((o) => o.kind === "StatefulSet")) {
    const serviceName = (sts.spec as { serviceName?: string }).serviceName;
    const svc = objs.find((o) => o.kind === "Service" && o.metadata.name === serviceName);
    if (!svc) {
      problems.push(`${id(sts)}: serviceName ${serviceName} names no rendered Service (its pods would get no DNS names)`);
      continue;
    }
    const spec = svc.spec as { clusterIP?: string; publishNotReadyAddresses?: boolean; selector?: Labels };
    if (spec.clusterIP !== "None") problems.push(`${id(sts)}: governing Service ${serviceName} is not headless`);
    if (spec.publishNotReadyAddresses !== true) problems.push(`${id(sts)}: governing Service ${serviceName} does not publish not-ready addresses (peers could not reach each other before they are ready)`);
    if (!matches(spec.selector, podTemplate(sts).metadata?.labels)) problems.push(`${id(sts)}: governing Service ${serviceName} does not select its pods`);
  }

  for (const pdb of objs.filter((o) => o.kind === "PodDisruptionBudget")) {
    const sel = (pdb.spec as { selector?: { matchLabels?: Labels } }).selector?.matchLabels;
    const pods = podsSelectedBy(objs, sel);
    if (pods.length !== 1) problems.push(`${id(pdb)}: selector ${JSON.stringify(sel)} matches ${pods.length === 0 ? "no workload's pods" : `the pods of ${pods.map(id).join(", ")}`} (it must protect exactly one workload)`);
  }

  for (const scaler of objs.filter((o) => o.kind === "HorizontalPodAutoscaler" || o.kind === "ScaledObject")) {
    const ref = (scaler.spec as { scaleTargetRef?: { kind?: string; name?: string } }).scaleTargetRef;
    const kind = ref?.kind ?? "Deployment";
    if (!objs.some((o) => o.kind === kind && o.metadata.name === ref?.name)) problems.push(`${id(scaler)}: scaleTargetRef ${kind}/${ref?.name} is not rendered`);
  }

  for (const np of objs.filter((o) => o.kind === "NetworkPolicy")) {
    const spec = np.spec as { podSelector?: { matchLabels?: Labels }; ingress?: { from?: { podSelector?: { matchLabels?: Labels } }[] }[] };
    if (podsSelectedBy(objs, spec.podSelector?.matchLabels).length === 0) problems.push(`${id(np)}: podSelector matches no pods`);
    for (const rule of spec.ingress ?? []) for (const peer of rule.from ?? []) {
      const sel = peer.podSelector?.matchLabels;
      if (sel && Object.keys(sel).length > 0 && podsSelectedBy(objs, sel).length === 0) problems.push(`${id(np)}: an ingress peer selects no pods: ${JSON.stringify(sel)}`);
    }
  }
  return problems;
}
