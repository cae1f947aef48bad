/**
 * Hand-written protobuf codecs for the messages of KV Connect's data path
 * (`com.deno.kv.datapath`, denoland/denokv `proto/schema/datapath.proto`),
 * over `@bufbuild/protobuf/wire`'s BinaryReader and BinaryWriter.
 *
 * Hand-written rather than generated: fifteen small messages, no build step
 * or `protoc` needed offline, and the decoders can refuse a wrong wire type
 * for a known field (a generated decoder would read garbage) while still
 * skipping unknown fields as proto3 requires. Enums stay numbers here; the
 * conversion layer refuses unknown values.
 *
 * @module
 */
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

/** `SnapshotReadStatus`. */
export const SnapshotReadStatus = {
  SR_UNSPECIFIED: 0,
  SR_SUCCESS: 1,
  SR_READ_DISABLED: 2,
} as const;

/** `AtomicWriteStatus`. */
export const AtomicWriteStatus = {
  AW_UNSPECIFIED: 0,
  AW_SUCCESS: 1,
  AW_CHECK_FAILURE: 2,
  AW_WRITE_DISABLED: 5,
} as const;

/** `MutationType`. */
export const MutationType = {
  M_UNSPECIFIED: 0,
  M_SET: 1,
  M_DELETE: 2,
  M_SUM: 3,
  M_MAX: 4,
  M_MIN: 5,
  M_SET_SUFFIX_VERSIONSTAMPED_KEY: 9,
} as const;

/** `ValueEncoding`. */
export const ValueEncodingNumber = {
  VE_UNSPECIFIED: 0,
  VE_V8: 1,
  VE_LE64: 2,
  VE_BYTES: 3,
} as const;

/** `ReadRange`. */
export interface PbReadRange {
  start: Uint8Array;
  end: Uint8Array;
  limit: number;
  reverse: boolean;
}
/** `SnapshotRead`. */
export interface PbSnapshotRead {
  ranges: PbReadRange[];
}
/** `KvEntry`. */
export interface PbKvEntry {
  key: Uint8Array;
  value: Uint8Array;
  encoding: number;
  versionstamp: Uint8Array;
}
/** `ReadRangeOutput`. */
export interface PbReadRangeOutput {
  values: PbKvEntry[];
}
/** `SnapshotReadOutput`. */
export interface PbSnapshotReadOutput {
  ranges: PbReadRangeOutput[];
  readDisabled: boolean;
  readIsStronglyConsistent: boolean;
  status: number;
}
/** `KvValue`. */
export interface PbKvValue {
  data: Uint8Array;
  encoding: number;
}
/** `Check`. An empty versionstamp means "the key must be absent". */
export interface PbCheck {
  key: Uint8Array;
  versionstamp: Uint8Array;
}
/** `Mutation`. `expireAtMs` 0 means never. */
export interface PbMutation {
  key: Uint8Array;
  value: PbKvValue | null;
  mutationType: number;
  expireAtMs: bigint;
  sumMin: Uint8Array;
  sumMax: Uint8Array;
  sumClamp: boolean;
}
/** `Enqueue`. */
export interface PbEnqueue {
  payload: Uint8Array;
  deadlineMs: bigint;
  keysIfUndelivered: Uint8Array[];
  backoffSchedule: number[];
}
/** `AtomicWrite`. */
export interface PbAtomicWrite {
  checks: PbCheck[];
  mutations: PbMutation[];
  enqueues: PbEnqueue[];
}
/** `AtomicWriteOutput`. */
export interface PbAtomicWriteOutput {
  status: number;
  versionstamp: Uint8Array;
  failedChecks: number[];
}
/** `Watch` (its `WatchKey`s flattened to their keys). */
export interface PbWatch {
  keys: Uint8Array[];
}
/** `WatchKeyOutput`. */
export interface PbWatchKeyOutput {
  changed: boolean;
  entryIfChanged: PbKvEntry | null;
}
/** `WatchOutput`. */
export interface PbWatchOutput {
  status: number;
  keys: PbWatchKeyOutput[];
}

/** A message that does not decode: bad wire format or a known field with the wrong wire type. */
export class ProtobufDecodeError extends TypeError {
  override name = "ProtobufDecodeError";
}

const EMPTY: Uint8Array = new Uint8Array(0);

type FieldReader = (reader: BinaryReader, wireType: WireType) => void;

/** Reads every field of one message, calling `onField[fieldNo]` or skipping unknown fields. */
function readMessage(
  bytes: Uint8Array,
  messageName: string,
  onField: Record<number, FieldReader>,
): void {
  const reader = new BinaryReader(bytes);
  try {
    while (reader.pos < reader.len) {
      const [fieldNo, wireType] = reader.tag();
      const read = onField[fieldNo];
      if (read === undefined) reader.skip(wireType, fieldNo);
      else read(reader, wireType);
    }
  } catch (error) {
    if (error instanceof ProtobufDecodeError) throw error;
    throw new ProtobufDecodeError(
      `Cannot decode ${messageName}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

function expect(
  wireType: WireType,
  expected: WireType,
  messageName: string,
  fieldNo: number,
): void {
  if (wireType !== expected) {
    throw new ProtobufDecodeError(
      `Cannot decode ${messageName}: field ${fieldNo} has wire type ${wireType}, expected ${expected}`,
    );
  }
}

/** Field reader for a `bytes` field. */
function bytesField(
  name: string,
  no: number,
  set: (value: Uint8Array) => void,
): FieldReader {
  return (reader, wireType) => {
    expect(wireType, WireType.LengthDelimited, name, no);
    set(reader.bytes());
  };
}

/** Field reader for a varint field (int32, bool, enum, int64). */
function varintField<T>(
  name: string,
  no: number,
  read: (reader: BinaryReader) => T,
  set: (value: T) => void,
): FieldReader {
  return (reader, wireType) => {
    expect(wireType, WireType.Varint, name, no);
    set(read(reader));
  };
}

/** Field reader for `repeated uint32`, packed or not. */
function uint32ListField(
  name: string,
  no: number,
  list: number[],
): FieldReader {
  return (reader, wireType) => {
    if (wireType === WireType.Varint) {
      list.push(reader.uint32());
      return;
    }
    expect(wireType, WireType.LengthDelimited, name, no);
    const packed = new BinaryReader(reader.bytes());
    while (packed.pos < packed.len) list.push(packed.uint32());
  };
}

const int32 = (reader: BinaryReader) => reader.int32();
const bool = (reader: BinaryReader) => reader.bool();
const int64 = (reader: BinaryReader) => BigInt(reader.int64());

function decodeReadRange(bytes: Uint8Array): PbReadRange {
  const out: PbReadRange = {
    start: EMPTY,
    end: EMPTY,
    limit: 0,
    reverse: false,
  };
  const n = "ReadRange";
  readMessage(bytes, n, {
    1: bytesField(n, 1, (v) => out.start = v),
    2: bytesField(n, 2, (v) => out.end = v),
    3: varintField(n, 3, int32, (v) => out.limit = v),
    4: varintField(n, 4, bool, (v) => out.reverse = v),
  });
  return out;
}

/** Decodes a `SnapshotRead`. @throws {ProtobufDecodeError} */
export function decodeSnapshotRead(bytes: Uint8Array): PbSnapshotRead {
  const out: PbSnapshotRead = { ranges: [] };
  readMessage(bytes, "SnapshotRead", {
    1: bytesField(
      "SnapshotRead",
      1,
      (v) => out.ranges.push(decodeReadRange(v)),
    ),
  });
  return out;
}

/** Decodes a `KvEntry`. @throws {ProtobufDecodeError} */
export function decodeKvEntry(bytes: Uint8Array): PbKvEntry {
  const out: PbKvEntry = {
    key: EMPTY,
    value: EMPTY,
    encoding: 0,
    versionstamp: EMPTY,
  };
  const n = "KvEntry";
  readMessage(bytes, n, {
    1: bytesField(n, 1, (v) => out.key = v),
    2: bytesField(n, 2, (v) => out.value = v),
    3: varintField(n, 3, int32, (v) => out.encoding = v),
    4: bytesField(n, 4, (v) => out.versionstamp = v),
  });
  return out;
}

/** Decodes a `SnapshotReadOutput`. @throws {ProtobufDecodeError} */
export function decodeSnapshotReadOutput(
  bytes: Uint8Array,
): PbSnapshotReadOutput {
  const out: PbSnapshotReadOutput = {
    ranges: [],
    readDisabled: false,
    readIsStronglyConsistent: false,
    status: 0,
  };
  const n = "SnapshotReadOutput";
  readMessage(bytes, n, {
    1: bytesField(n, 1, (v) => {
      const range: PbReadRangeOutput = { values: [] };
      readMessage(v, "ReadRangeOutput", {
        1: bytesField(
          "ReadRangeOutput",
          1,
          (e) => range.values.push(decodeKvEntry(e)),
        ),
      });
      out.ranges.push(range);
    }),
    2: varintField(n, 2, bool, (v) => out.readDisabled = v),
    4: varintField(n, 4, bool, (v) => out.readIsStronglyConsistent = v),
    8: varintField(n, 8, int32, (v) => out.status = v),
  });
  return out;
}

function decodeMutation(bytes: Uint8Array): PbMutation {
  const out: PbMutation = {
    key: EMPTY,
    value: null,
    mutationType: 0,
    expireAtMs: 0n,
    sumMin: EMPTY,
    sumMax: EMPTY,
    sumClamp: false,
  };
  const n = "Mutation";
  readMessage(bytes, n, {
    1: bytesField(n, 1, (v) => out.key = v),
    2: bytesField(n, 2, (v) => {
      const value: PbKvValue = { data: EMPTY, encoding: 0 };
      readMessage(v, "KvValue", {
        1: bytesField("KvValue", 1, (d) => value.data = d),
        2: varintField("KvValue", 2, int32, (e) => value.encoding = e),
      });
      out.value = value;
    }),
    3: varintField(n, 3, int32, (v) => out.mutationType = v),
    4: varintField(n, 4, int64, (v) => out.expireAtMs = v),
    5: bytesField(n, 5, (v) => out.sumMin = v),
    6: bytesField(n, 6, (v) => out.sumMax = v),
    7: varintField(n, 7, bool, (v) => out.sumClamp = v),
  });
  return out;
}

function decodeEnqueue(bytes: Uint8Array): PbEnqueue {
  const out: PbEnqueue = {
    payload: EMPTY,
    deadlineMs: 0n,
    keysIfUndelivered: [],
    backoffSchedule: [],
  };
  const n = "Enqueue";
  readMessage(bytes, n, {
    1: bytesField(n, 1, (v) => out.payload = v),
    2: varintField(n, 2, int64, (v) => out.deadlineMs = v),
    3: bytesField(n, 3, (v) => out.keysIfUndelivered.push(v)),
    4: uint32ListField(n, 4, out.backoffSchedule),
  });
  return out;
}

/** Decodes an `AtomicWrite`. @throws {ProtobufDecodeError} */
export function decodeAtomicWrite(bytes: Uint8Array): PbAtomicWrite {
  const out: PbAtomicWrite = { checks: [], mutations: [], enqueues: [] };
  const n = "AtomicWrite";
  readMessage(bytes, n, {
    1: bytesField(n, 1, (v) => {
      const check: PbCheck = { key: EMPTY, versionstamp: EMPTY };
      readMessage(v, "Check", {
        1: bytesField("Check", 1, (k) => check.key = k),
        2: bytesField("Check", 2, (s) => check.versionstamp = s),
      });
      out.checks.push(check);
    }),
    2: bytesField(n, 2, (v) => out.mutations.push(decodeMutation(v))),
    3: bytesField(n, 3, (v) => out.enqueues.push(decodeEnqueue(v))),
  });
  return out;
}

/** Decodes an `AtomicWriteOutput`. @throws {ProtobufDecodeError} */
export function decodeAtomicWriteOutput(
  bytes: Uint8Array,
): PbAtomicWriteOutput {
  const out: PbAtomicWriteOutput = {
    status: 0,
    versionstamp: EMPTY,
    failedChecks: [],
  };
  const n = "AtomicWriteOutput";
  readMessage(bytes, n, {
    1: varintField(n, 1, int32, (v) => out.status = v),
    2: bytesField(n, 2, (v) => out.versionstamp = v),
    4: uint32ListField(n, 4, out.failedChecks),
  });
  return out;
}

/** Decodes a `Watch`. @throws {ProtobufDecodeError} */
export function decodeWatch(bytes: Uint8Array): PbWatch {
  const out: PbWatch = { keys: [] };
  readMessage(bytes, "Watch", {
    1: bytesField("Watch", 1, (v) => {
      let key = EMPTY;
      readMessage(v, "WatchKey", {
        1: bytesField("WatchKey", 1, (k) => key = k),
      });
      out.keys.push(key);
    }),
  });
  return out;
}

/** Decodes a `WatchOutput`. @throws {ProtobufDecodeError} */
export function decodeWatchOutput(bytes: Uint8Array): PbWatchOutput {
  const out: PbWatchOutput = { status: 0, keys: [] };
  const n = "WatchOutput";
  readMessage(bytes, n, {
    1: varintField(n, 1, int32, (v) => out.status = v),
    2: bytesField(n, 2, (v) => {
      const key: PbWatchKeyOutput = { changed: false, entryIfChanged: null };
      readMessage(v, "WatchKeyOutput", {
        1: varintField("WatchKeyOutput", 1, bool, (c) => key.changed = c),
        2: bytesField(
          "WatchKeyOutput",
          2,
          (e) => key.entryIfChanged = decodeKvEntry(e),
        ),
      });
      out.keys.push(key);
    }),
  });
  return out;
}

// Encoders. Default values are omitted, as proto3 does.

function writeBytes(writer: BinaryWriter, no: number, value: Uint8Array): void {
  if (value.length > 0) writer.tag(no, WireType.LengthDelimited).bytes(value);
}
function writeVarint(writer: BinaryWriter, no: number, value: number): void {
  if (value !== 0) writer.tag(no, WireType.Varint).int32(value);
}
function writeBool(writer: BinaryWriter, no: number, value: boolean): void {
  if (value) writer.tag(no, WireType.Varint).bool(true);
}
function writeInt64(writer: BinaryWriter, no: number, value: bigint): void {
  if (value !== 0n) writer.tag(no, WireType.Varint).int64(value);
}
function writePackedUint32(
  writer: BinaryWriter,
  no: number,
  values: readonly number[],
): void {
  if (values.length === 0) return;
  writer.tag(no, WireType.LengthDelimited).fork();
  for (const value of values) writer.uint32(value);
  writer.join();
}
function writeMessage(
  writer: BinaryWriter,
  no: number,
  write: (writer: BinaryWriter) => void,
): void {
  writer.tag(no, WireType.LengthDelimited).fork();
  write(writer);
  writer.join();
}

function writeKvEntry(writer: BinaryWriter, entry: PbKvEntry): void {
  writeBytes(writer, 1, entry.key);
  writeBytes(writer, 2, entry.value);
  writeVarint(writer, 3, entry.encoding);
  writeBytes(writer, 4, entry.versionstamp);
}

/** Encodes a `SnapshotRead`. */
export function encodeSnapshotRead(message: PbSnapshotRead): Uint8Array {
  const writer = new BinaryWriter();
  for (const range of message.ranges) {
    writeMessage(writer, 1, (w) => {
      writeBytes(w, 1, range.start);
      writeBytes(w, 2, range.end);
      writeVarint(w, 3, range.limit);
      writeBool(w, 4, range.reverse);
    });
  }
  return writer.finish();
}

/** Encodes a `SnapshotReadOutput`. */
export function encodeSnapshotReadOutput(
  message: PbSnapshotReadOutput,
): Uint8Array {
  const writer = new BinaryWriter();
  for (const range of message.ranges) {
    writeMessage(writer, 1, (w) => {
      for (const entry of range.values) {
        writeMessage(w, 1, (e) => writeKvEntry(e, entry));
      }
    });
  }
  writeBool(writer, 2, message.readDisabled);
  writeBool(writer, 4, message.readIsStronglyConsistent);
  writeVarint(writer, 8, message.status);
  return writer.finish();
}

/** Encodes an `AtomicWrite`. */
export function encodeAtomicWrite(message: PbAtomicWrite): Uint8Array {
  const writer = new BinaryWriter();
  for (const check of message.checks) {
    writeMessage(writer, 1, (w) => {
      writeBytes(w, 1, check.key);
      writeBytes(w, 2, check.versionstamp);
    });
  }
  for (const mutation of message.mutations) {
    writeMessage(writer, 2, (w) => {
      writeBytes(w, 1, mutation.key);
      const { value } = mutation;
      if (value !== null) {
        writeMessage(w, 2, (v) => {
          writeBytes(v, 1, value.data);
          writeVarint(v, 2, value.encoding);
        });
      }
      writeVarint(w, 3, mutation.mutationType);
      writeInt64(w, 4, mutation.expireAtMs);
      writeBytes(w, 5, mutation.sumMin);
      writeBytes(w, 6, mutation.sumMax);
      writeBool(w, 7, mutation.sumClamp);
    });
  }
  for (const enqueue of message.enqueues) {
    writeMessage(writer, 3, (w) => {
      writeBytes(w, 1, enqueue.payload);
      writeInt64(w, 2, enqueue.deadlineMs);
      for (const key of enqueue.keysIfUndelivered) {
        w.tag(3, WireType.LengthDelimited).bytes(key);
      }
      writePackedUint32(w, 4, enqueue.backoffSchedule);
    });
  }
  return writer.finish();
}

/** Encodes an `AtomicWriteOutput`. */
export function encodeAtomicWriteOutput(
  message: PbAtomicWriteOutput,
): Uint8Array {
  const writer = new BinaryWriter();
  writeVarint(writer, 1, message.status);
  writeBytes(writer, 2, message.versionstamp);
  writePackedUint32(writer, 4, message.failedChecks);
  return writer.finish();
}

/** Encodes a `Watch`. */
export function encodeWatch(message: PbWatch): Uint8Array {
  const writer = new BinaryWriter();
  for (const key of message.keys) {
    // An empty key is still a present WatchKey: write the message even if empty.
    writeMessage(writer, 1, (w) => writeBytes(w, 1, key));
  }
  return writer.finish();
}

/** Encodes a `WatchOutput`. */
export function encodeWatchOutput(message: PbWatchOutput): Uint8Array {
  const writer = new BinaryWriter();
  writeVarint(writer, 1, message.status);
  for (const key of message.keys) {
    writeMessage(writer, 2, (w) => {
      writeBool(w, 1, key.changed);
      const entry = key.entryIfChanged;
      if (entry !== null) writeMessage(w, 2, (e) => writeKvEntry(e, entry));
    });
  }
  return writer.finish();
}
