import { createRequire } from "node:module";
import type * as protoLoader from "@grpc/proto-loader";

/**
 * protobufjs names a map field's implicit entry message after the field ("Parameters")
 * where protobuf requires "<Field>Entry" ("ParametersEntry"); strict reflection clients
 * (grpcurl, Go protobuf) then reject the whole file. This rewrites the descriptors that
 * server reflection serves. It changes nothing on the wire.
 */
const require = createRequire(import.meta.url);

interface MessageType {
  name: string;
  field?: { name: string; typeName?: string }[];
  nestedType?: MessageType[];
  options?: { mapEntry?: boolean };
}
interface FileType {
  messageType?: MessageType[];
}
interface DescriptorCodec {
  decode(b: Uint8Array): unknown;
  encode(m: unknown): { finish(): Uint8Array };
  toObject(m: unknown, o: object): FileType;
  fromObject(o: FileType): unknown;
}

function fixMessage(m: MessageType): void {
  const renames = new Map<string, string>();
  for (const n of m.nestedType ?? []) {
    if (n.options?.mapEntry && !n.name.endsWith("Entry")) {
      const fixed = `${n.name}Entry`;
      renames.set(n.name, fixed);
      n.name = fixed;
    }
    fixMessage(n);
  }
  for (const f of m.field ?? []) {
    if (!f.typeName) continue;
    const parts = f.typeName.split(".");
    const last = parts[parts.length - 1]!;
    const to = renames.get(last);
    // map entries are referenced relative to their message, or fully qualified through it
    if (to && (parts.length === 1 || parts[parts.length - 2] === m.name)) {
      parts[parts.length - 1] = to;
      f.typeName = parts.join(".");
    }
  }
}

export function fixMapEntryNames(def: protoLoader.PackageDefinition): protoLoader.PackageDefinition {
  const codec = (require("protobufjs/ext/descriptor") as { FileDescriptorProto: DescriptorCodec }).FileDescriptorProto;
  const cache = new Map<Buffer, Buffer>();
  for (const entry of Object.values(def)) {
    const e = entry as { fileDescriptorProtos?: Buffer[] };
    if (!e.fileDescriptorProtos) continue;
    e.fileDescriptorProtos = e.fileDescriptorProtos.map((b) => {
      let fixed = cache.get(b);
      if (!fixed) {
        const obj = codec.toObject(codec.decode(b), { defaults: false });
        for (const m of obj.messageType ?? []) fixMessage(m);
        fixed = Buffer.from(codec.encode(codec.fromObject(obj)).finish());
        cache.set(b, fixed);
      }
      return fixed;
    });
  }
  return def;
}
