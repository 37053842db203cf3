import { Code, SwitchyardError } from "@switchyard/errors";
import { type WireField, fieldString, messageField, parseMessage, stringField, writeMessage } from "./onnx-wire";

/**
 * A grouped expert model: the graphs of several experts of one layer side by side in one
 * ONNX model, so that one session call runs all of them over their own rows (#17: 192
 * tiny expert calls per step each paid a call's fixed cost). The per-expert parts stay
 * the unit of placement, loading and caching; a grouped model is derived from their
 * bytes, with every node, weight and attribute unchanged and only the names prefixed,
 * so each expert computes exactly what its part computes (the model checks it bitwise
 * before use: see onnx-model.ts).
 *
 * ONNX field numbers (onnx.proto): ModelProto.graph 7, opset_import 8; GraphProto.node 1,
 * name 2, initializer 5, input 11, output 12, value_info 13, sparse_initializer 15;
 * NodeProto.input 1, output 2, name 3, op_type 4, attribute 5; AttributeProto.g 6,
 * graphs 11; TensorProto.name 8, data_location 14; ValueInfoProto.name 1, type 2;
 * TypeProto.tensor_type 1; TypeProto.Tensor.shape 2; TensorShapeProto.dim 1;
 * Dimension.dim_param 2. Symbolic dimensions are renamed too: the parts all call their
 * row count by one name, which would tell ONNX Runtime that every expert gets as many
 * rows as every other (it then plans shared buffers and fails on unequal counts).
 */
const MODEL_GRAPH = 7;
const MODEL_OPSET = 8;
const GRAPH_NODE = 1;
const GRAPH_NAME = 2;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const GRAPH_VALUE_INFO = 13;
const GRAPH_SPARSE_INITIALIZER = 15;
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_NAME = 3;
const NODE_ATTRIBUTE = 5;
const ATTRIBUTE_GRAPH = 6;
const ATTRIBUTE_GRAPHS = 11;
const TENSOR_NAME = 8;
const TENSOR_DATA_LOCATION = 14;
const VALUE_INFO_NAME = 1;
const VALUE_INFO_TYPE = 2;
const TYPE_TENSOR = 1;
const TENSOR_TYPE_SHAPE = 2;
const SHAPE_DIM = 1;
const DIM_PARAM = 2;

/** The names a grouped model gives expert `key`'s input and output. */
export function groupedName(key: number, name: string): string {
  return `e${key}:${name}`;
}

export interface GroupMember {
  /** The expert's id in the group: its names become `e<key>:<name>`. */
  readonly key: number;
  /** The expert part's serialized ModelProto. */
  readonly bytes: Uint8Array;
  /** For messages: the part's name. */
  readonly name: string;
}

/** Rewrites the fields `names` of a message with `rename`, keeping empty names (absent optional inputs) empty. */
function renamed(fields: readonly WireField[], names: readonly number[], rename: (s: string) => string): WireField[] {
  return fields.map((f) => (names.includes(f.no) && f.type === 2 && f.value.length > 0 ? stringField(f.no, rename(fieldString(f))) : f));
}

/** A ValueInfoProto with its name and its tensor type's symbolic dimensions renamed. */
function renamedValueInfo(fields: readonly WireField[], rename: (s: string) => string): WireField[] {
  const dims = (shape: readonly WireField[]) =>
    shape.map((d) => (d.no === SHAPE_DIM && d.type === 2 ? messageField(SHAPE_DIM, renamed(parseMessage(d.value), [DIM_PARAM], rename)) : d));
  const tensor = (t: readonly WireField[]) =>
    t.map((f) => (f.no === TENSOR_TYPE_SHAPE && f.type === 2 ? messageField(TENSOR_TYPE_SHAPE, dims(parseMessage(f.value))) : f));
  const type = (ty: readonly WireField[]) => ty.map((f) => (f.no === TYPE_TENSOR && f.type === 2 ? messageField(TYPE_TENSOR, tensor(parseMessage(f.value))) : f));
  return renamed(fields, [VALUE_INFO_NAME], rename).map((f) => (f.no === VALUE_INFO_TYPE && f.type === 2 ? messageField(VALUE_INFO_TYPE, type(parseMessage(f.value))) : f));
}

function rewriteGraph(m: GroupMember, graph: readonly WireField[]): Map<number, WireField[]> {
  const rename = (s: string) => groupedName(m.key, s);
  const out = new Map<number, WireField[]>([GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_VALUE_INFO].map((no) => [no, []]));
  for (const f of graph) {
    switch (f.no) {
      case GRAPH_NODE: {
        const node = parseMessage(f.value);
        for (const a of node.filter((x) => x.no === NODE_ATTRIBUTE)) {
          if (parseMessage(a.value).some((x) => x.no === ATTRIBUTE_GRAPH || x.no === ATTRIBUTE_GRAPHS)) {
            throw new SwitchyardError(`part ${m.name} has a node with a subgraph; grouped experts take plain graphs only`, Code.FailedPrecondition);
          }
        }
        out.get(GRAPH_NODE)!.push(messageField(GRAPH_NODE, renamed(node, [NODE_INPUT, NODE_OUTPUT, NODE_NAME], rename)));
        break;
      }
      case GRAPH_INITIALIZER: {
        const t = parseMessage(f.value);
        if (t.some((x) => x.no === TENSOR_DATA_LOCATION && x.value[0] === 1)) {
          throw new SwitchyardError(`part ${m.name} keeps weights in external data; grouped experts need them inside the model`, Code.FailedPrecondition);
        }
        out.get(GRAPH_INITIALIZER)!.push(messageField(GRAPH_INITIALIZER, renamed(t, [TENSOR_NAME], rename)));
        break;
      }
      case GRAPH_INPUT:
      case GRAPH_OUTPUT:
      case GRAPH_VALUE_INFO:
        out.get(f.no)!.push(messageField(f.no, renamedValueInfo(parseMessage(f.value), rename)));
        break;
      case GRAPH_SPARSE_INITIALIZER:
        throw new SwitchyardError(`part ${m.name} has sparse initializers; grouped experts take dense weights only`, Code.FailedPrecondition);
      default:
        // name, doc_string, quantization annotations, metadata: the group has its own or none
        break;
    }
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * One ONNX model holding every member's graph, names prefixed per member. The members
 * must share the model header (IR version, opsets, producer): they are parts of one export.
 */
export function groupExpertModels(members: readonly GroupMember[], graphName: string): Uint8Array {
  if (members.length === 0) throw new SwitchyardError("a grouped expert model needs at least one member", Code.InvalidArgument);
  if (new Set(members.map((m) => m.key)).size !== members.length) throw new SwitchyardError("grouped expert keys must be distinct", Code.InvalidArgument);
  const models = members.map((m) => parseMessage(m.bytes));
  const header = (fields: WireField[]) => writeMessage(fields.filter((f) => f.no !== MODEL_GRAPH));
  const first = header(models[0]!);
  members.forEach((m, i) => {
    if (!sameBytes(header(models[i]!), first)) {
      throw new SwitchyardError(`part ${m.name} has another model header (IR version, opsets or producer) than ${members[0]!.name}`, Code.FailedPrecondition);
    }
    if (!models[i]!.some((f) => f.no === MODEL_OPSET)) throw new SwitchyardError(`part ${m.name} declares no opset`, Code.FailedPrecondition);
  });
  const sections = new Map<number, WireField[]>([GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_VALUE_INFO].map((no) => [no, []]));
  members.forEach((m, i) => {
    const g = models[i]!.find((f) => f.no === MODEL_GRAPH);
    if (!g) throw new SwitchyardError(`part ${m.name} has no graph`, Code.DataLoss);
    for (const [no, fs] of rewriteGraph(m, parseMessage(g.value))) sections.get(no)!.push(...fs);
  });
  const graph: WireField[] = [stringField(GRAPH_NAME, graphName)];
  for (const fs of sections.values()) graph.push(...fs);
  const fields: WireField[] = [];
  let placed = false;
  for (const f of models[0]!) {
    if (f.no !== MODEL_GRAPH) fields.push(f);
    else if (!placed) {
      fields.push(messageField(MODEL_GRAPH, graph));
      placed = true;
    }
  }
  return writeMessage(fields);
}
