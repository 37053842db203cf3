import { createHash } from "node:crypto";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type WireField, fieldString, messageField, parseMessage, readVarint, stringField, varint, writeMessage } from "./onnx-wire";

/**
 * An expert part split into its graph and its weights: the graph with every initializer
 * turned into an input of the same name, type and shape (the "skeleton"), and the
 * initializers' values. Experts exported from one module share one skeleton, so one
 * ONNX Runtime session runs any of them, fed the expert's weights with its rows. The
 * expert device uses this so that making an expert resident is copying its weights into
 * device memory (what a GPU does), not creating a session: at batch 32 and a 50 % budget
 * a worker makes ~100 experts resident per tick, and creating, first running and
 * releasing a session cost ~0.66 ms each (#17) against ~0.01 ms for the copy.
 *
 * ONNX field numbers (onnx.proto): ModelProto.graph 7; GraphProto.initializer 5, input
 * 11, sparse_initializer 15; TensorProto.dims 1, data_type 2, float_data 4, name 8,
 * raw_data 9, data_location 14; ValueInfoProto.name 1, type 2; TypeProto.tensor_type 1;
 * TypeProto.Tensor.elem_type 1, shape 2; TensorShapeProto.dim 1; Dimension.dim_value 1.
 */
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_SPARSE_INITIALIZER = 15;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_FLOAT_DATA = 4;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const TENSOR_DATA_LOCATION = 14;
const VALUE_INFO_NAME = 1;
const VALUE_INFO_TYPE = 2;
const TYPE_TENSOR = 1;
const TENSOR_TYPE_ELEM = 1;
const TENSOR_TYPE_SHAPE = 2;
const SHAPE_DIM = 1;
const DIM_VALUE = 1;
const FLOAT = 1;

export interface WeightTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

export interface ExpertWeights {
  /** The graph with its initializers as inputs (a serialized ModelProto). */
  readonly skeleton: Uint8Array;
  /** sha256 of the skeleton: experts with equal keys run on one session. */
  readonly key: string;
  readonly tensors: readonly WeightTensor[];
}

const varintValue = (v: Uint8Array): number => readVarint(v, 0)[0];
const varintField = (no: number, n: number): WireField => ({ no, type: 0, value: Uint8Array.from(varint(n)) });

/** Repeated int64 dims, packed or not. */
function dimsOf(fields: readonly WireField[]): number[] {
  const dims: number[] = [];
  for (const f of fields) {
    if (f.no !== TENSOR_DIMS) continue;
    if (f.type === 0) dims.push(varintValue(f.value));
    else if (f.type === 2) {
      for (let i = 0; i < f.value.length; ) {
        const [d, next] = readVarint(f.value, i);
        dims.push(d);
        i = next;
      }
    }
  }
  return dims;
}

/** A float initializer's values (a copy: raw_data need not be 4-byte aligned in the file). */
function floatsOf(fields: readonly WireField[], count: number, part: string, name: string): Float32Array {
  const raw = fields.find((f) => f.no === TENSOR_RAW_DATA);
  const out = new Float32Array(count);
  if (raw) {
    if (raw.value.length !== count * 4) throw new SwitchyardError(`part ${part}: initializer ${name} has ${raw.value.length} bytes for ${count} floats`, Code.DataLoss);
    new Uint8Array(out.buffer).set(raw.value);
    return out;
  }
  // float_data: packed fixed32 (or, unpacked, one field per value)
  let k = 0;
  for (const f of fields) {
    if (f.no !== TENSOR_FLOAT_DATA) continue;
    const bytes = f.value;
    if (bytes.length % 4 !== 0 || k + bytes.length / 4 > count) throw new SwitchyardError(`part ${part}: initializer ${name} has malformed float_data`, Code.DataLoss);
    new Uint8Array(out.buffer, k * 4, bytes.length).set(bytes);
    k += bytes.length / 4;
  }
  if (k !== count) throw new SwitchyardError(`part ${part}: initializer ${name} has ${k} values for ${count}`, Code.DataLoss);
  return out;
}

/** A graph input for a float tensor of fixed shape. */
function inputField(name: string, dims: readonly number[]): WireField {
  const shape = dims.map((d) => messageField(SHAPE_DIM, [varintField(DIM_VALUE, d)]));
  const tensorType = [varintField(TENSOR_TYPE_ELEM, FLOAT), messageField(TENSOR_TYPE_SHAPE, shape)];
  return messageField(GRAPH_INPUT, [stringField(VALUE_INFO_NAME, name), messageField(VALUE_INFO_TYPE, [messageField(TYPE_TENSOR, tensorType)])]);
}

/**
 * Splits an expert part (a serialized ModelProto) into skeleton and weights. Throws
 * FAILED_PRECONDITION for what the split does not take (non-float or external or sparse
 * weights): such parts run on sessions of their own.
 */
export function splitExpertWeights(bytes: Uint8Array, part: string): ExpertWeights {
  const model = parseMessage(bytes);
  const g = model.find((f) => f.no === MODEL_GRAPH);
  if (!g) throw new SwitchyardError(`part ${part} has no graph`, Code.DataLoss);
  const graph = parseMessage(g.value);
  const nameOf = (fields: readonly WireField[], no: number) => {
    const f = fields.find((x) => x.no === no);
    return f ? fieldString(f) : "";
  };
  const declared = new Set(graph.filter((f) => f.no === GRAPH_INPUT).map((f) => nameOf(parseMessage(f.value), VALUE_INFO_NAME)));
  const tensors: WeightTensor[] = [];
  const kept: WireField[] = [];
  const inputs: WireField[] = [];
  for (const f of graph) {
    if (f.no === GRAPH_SPARSE_INITIALIZER) throw new SwitchyardError(`part ${part} has sparse initializers`, Code.FailedPrecondition);
    if (f.no !== GRAPH_INITIALIZER) {
      kept.push(f);
      continue;
    }
    const t = parseMessage(f.value);
    const name = nameOf(t, TENSOR_NAME);
    if (t.some((x) => x.no === TENSOR_DATA_LOCATION && x.value[0] === 1)) throw new SwitchyardError(`part ${part} keeps initializer ${name} in external data`, Code.FailedPrecondition);
    const type = t.find((x) => x.no === TENSOR_DATA_TYPE);
    if (!type || varintValue(type.value) !== FLOAT) throw new SwitchyardError(`part ${part}: initializer ${name} is not float32`, Code.FailedPrecondition);
    const dims = dimsOf(t);
    tensors.push({ name, dims, data: floatsOf(t, dims.reduce((a, b) => a * b, 1), part, name) });
    if (!declared.has(name)) inputs.push(inputField(name, dims));
  }
  // The new inputs after the graph's own (its first inputs stay first).
  const lastInput = kept.reduce((at, f, i) => (f.no === GRAPH_INPUT ? i : at), -1);
  kept.splice(lastInput + 1, 0, ...inputs);
  const fields = model.map((f) => (f.no === MODEL_GRAPH ? messageField(MODEL_GRAPH, kept) : f));
  const skeleton = writeMessage(fields);
  return { skeleton, key: createHash("sha256").update(skeleton).digest("hex"), tensors };
}
