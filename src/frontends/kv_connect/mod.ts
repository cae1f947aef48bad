/**
 * The KV Connect server: stock `Deno.openKv("http://…")` clients against
 * any `KvBackend`.
 *
 * @module
 */
export type { KvConnectAppOptions } from "./app.ts";
export {
  KV_CONNECT_VERSIONS,
  kvConnectApp,
  METADATA_BODY_BYTES_MAX,
  REQUEST_BODY_BYTES_MAX,
} from "./app.ts";
export type { KvConnectErrorStatus } from "./errors.ts";
export { KV_CONNECT_MESSAGES, KvConnectError } from "./errors.ts";
export type {
  PbAtomicWrite,
  PbAtomicWriteOutput,
  PbCheck,
  PbEnqueue,
  PbKvEntry,
  PbKvValue,
  PbMutation,
  PbReadRange,
  PbReadRangeOutput,
  PbSnapshotRead,
  PbSnapshotReadOutput,
  PbWatch,
  PbWatchKeyOutput,
  PbWatchOutput,
} from "./proto.ts";
export {
  AtomicWriteStatus,
  decodeAtomicWrite,
  decodeAtomicWriteOutput,
  decodeKvEntry,
  decodeSnapshotRead,
  decodeSnapshotReadOutput,
  decodeWatch,
  decodeWatchOutput,
  encodeAtomicWrite,
  encodeAtomicWriteOutput,
  encodeSnapshotRead,
  encodeSnapshotReadOutput,
  encodeWatch,
  encodeWatchOutput,
  MutationType,
  ProtobufDecodeError,
  SnapshotReadStatus,
  ValueEncodingNumber,
} from "./proto.ts";
export { WATCH_FRAME_PREFIX_BYTES, watchFrame } from "./_watch_stream.ts";
