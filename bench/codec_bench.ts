/**
 * The codecs on a put's path, each group against a plain-JavaScript
 * baseline on the same payload (`JSON.stringify`/`JSON.parse`,
 * `structuredClone`, or a raw `@msgpack/msgpack` encode/decode of the same
 * object), so the summary reads as "× slower than the baseline":
 *
 * 1. the HTTP API's JSON body of `POST /v1/kv/set` (decode, then parse into
 *    a set mutation, as `frontends/http/kv.ts` does);
 * 2. the key codec (`model/key_codec.ts`);
 * 3. the KV command of a one-set atomic (`services/kv/commands.ts`) and its
 *    entry envelope (`services/entries.ts`), encode and decode;
 * 4. the peer frame of an `app` message carrying 1 and 64 entries of 256
 *    bytes (`protocol/envelope.ts`, `protocol/frame.ts`), encode and decode.
 *
 * Values are 256 bytes throughout. No I/O; no files.
 *
 * Run: deno task bench, or
 * npx -y deno@2.9.6 bench --allow-read --allow-write --allow-env --unstable-kv bench/codec_bench.ts
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { decodeKey, encodeKey, type KvKey } from "../src/model/key_codec.ts";
import type { KvCommand } from "../src/model/types.ts";
import {
  decodeCommand,
  encodeCommand,
  type KvServiceCommand,
} from "../src/services/kv/commands.ts";
import { decodeKvEntry, encodeKvEntry } from "../src/services/entries.ts";
import { decodeBody, toBase64 } from "../src/protocol/http_api_codec.ts";
import type { SetRequest } from "../src/protocol/http_api.ts";
import { parseSet } from "../src/frontends/http/_parse.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
} from "../src/protocol/envelope.ts";
import { encodeFrame, FrameDecoder } from "../src/protocol/frame.ts";
import type {
  AppendMessage,
  Entry,
  LogIndex,
  NodeId,
  Term,
} from "../src/raft/types.ts";

const VALUE_BYTES = 256;
// One shared encoder and decoder, as the codecs under test keep theirs:
// `encode()`/`decode()` build a new one per call (about 1 µs), which would
// flatter the codecs against the baseline.
const rawEncoder = new Encoder();
const rawDecoder = new Decoder();
const encode = (value: unknown) => rawEncoder.encode(value);
const decode = (bytes: Uint8Array) => rawDecoder.decode(bytes);
const value = new Uint8Array(VALUE_BYTES).map((_, i) => i & 0xff);
const NOW_MS = 1_700_000_000_000;

/** Holds each result, so the JIT cannot drop the work as dead code. */
let _sink: unknown = null;
/** Fails loudly when a codec does not round-trip (a bench of a broken codec is worthless). */
function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`Cannot run the codec bench: ${what}`);
}

// ---------------------------------------------------------------- HTTP body

const key: KvKey = ["users", "u-0001234", "profile"];
const setRequest: SetRequest = {
  key: ["users", "u-0001234", "profile"],
  value: { encoding: "bytes", data: toBase64(value) },
};
const setText = JSON.stringify(setRequest);
const setBody = new TextEncoder().encode(setText);
check(
  parseSet(decodeBody(setBody, "json"), NOW_MS).type === "set",
  "the put body does not parse",
);

Deno.bench({
  name: "JSON.parse() of the text",
  group: "HTTP put body decode",
  baseline: true,
  fn() {
    _sink = JSON.parse(setText);
  },
});
Deno.bench({
  name: "TextDecoder + JSON.parse() of the bytes",
  group: "HTTP put body decode",
  fn() {
    _sink = JSON.parse(new TextDecoder().decode(setBody));
  },
});
Deno.bench({
  name: "decodeBody(json)",
  group: "HTTP put body decode",
  fn() {
    _sink = decodeBody(setBody, "json");
  },
});
Deno.bench({
  name: "decodeBody(json) + parseSet() (key and value checked, base64 decoded)",
  group: "HTTP put body decode",
  fn() {
    _sink = parseSet(decodeBody(setBody, "json"), NOW_MS);
  },
});

// ---------------------------------------------------------------- key codec

const keyBytes = encodeKey(key);
const keyJson = JSON.stringify(key);
check(
  JSON.stringify(decodeKey(keyBytes)) === keyJson,
  "the key does not round-trip",
);

Deno.bench({
  name: "JSON.stringify() of the key",
  group: "key encode",
  baseline: true,
  fn() {
    _sink = JSON.stringify(key);
  },
});
Deno.bench({
  name: "msgpack encode() of the key",
  group: "key encode",
  fn() {
    _sink = encode(key);
  },
});
Deno.bench({
  name: "encodeKey() of a 3-part key",
  group: "key encode",
  fn() {
    _sink = encodeKey(key);
  },
});

Deno.bench({
  name: "JSON.parse() of the key",
  group: "key decode",
  baseline: true,
  fn() {
    _sink = JSON.parse(keyJson);
  },
});
Deno.bench({
  name: "decodeKey() of a 3-part key",
  group: "key decode",
  fn() {
    _sink = decodeKey(keyBytes);
  },
});

// ------------------------------------------------------- command and entry

const command: KvServiceCommand & KvCommand = {
  type: "atomic",
  operation: {
    checks: [],
    mutations: [{
      type: "set",
      key: keyBytes,
      value: { encoding: "bytes", data: value },
    }],
    enqueues: [],
  },
};
const commandBytes = encodeCommand(command);
const entryBytes = encodeKvEntry(command);
const rawCommandBytes = encode(command);
check(
  decodeCommand(commandBytes).type === "atomic" &&
    decodeKvEntry(entryBytes).type === "atomic",
  "the command does not round-trip",
);

Deno.bench({
  name: "msgpack encode() of the command object",
  group: "one-set atomic encode",
  baseline: true,
  fn() {
    _sink = encode(command);
  },
});
Deno.bench({
  name: "structuredClone() of the command object",
  group: "one-set atomic encode",
  fn() {
    _sink = structuredClone(command);
  },
});
Deno.bench({
  name: "encodeCommand() (payload)",
  group: "one-set atomic encode",
  fn() {
    _sink = encodeCommand(command);
  },
});
Deno.bench({
  name: "encodeKvEntry() (payload in its envelope: the log entry)",
  group: "one-set atomic encode",
  fn() {
    _sink = encodeKvEntry(command);
  },
});

Deno.bench({
  name: "msgpack decode() of the command object's bytes",
  group: "one-set atomic decode",
  baseline: true,
  fn() {
    _sink = decode(rawCommandBytes);
  },
});
Deno.bench({
  name: "decodeCommand() (payload, validated)",
  group: "one-set atomic decode",
  fn() {
    _sink = decodeCommand(commandBytes);
  },
});
Deno.bench({
  name: "decodeKvEntry() (envelope, then payload)",
  group: "one-set atomic decode",
  fn() {
    _sink = decodeKvEntry(entryBytes);
  },
});

// ---------------------------------------------------------------- peer frame

function appendMessage(count: number): AppendMessage {
  const entries: Entry[] = Array.from({ length: count }, (_, i) => ({
    term: 3 as Term,
    index: (1_000_001 + i) as LogIndex,
    type: "normal",
    // A buffer of its own, as every entry has: structuredClone copies a
    // buffer shared by all entries only once.
    data: value.slice(),
  }));
  return {
    type: "app",
    from: "n1" as NodeId,
    to: "n2" as NodeId,
    term: 3 as Term,
    logTerm: 3 as Term,
    index: 1_000_000 as LogIndex,
    entries,
    commit: 999_990 as LogIndex,
  };
}

for (const count of [1, 64]) {
  const message = appendMessage(count);
  const envelope: Envelope = { kind: "raft", message };
  const payload = encodeEnvelope(envelope);
  const frame = encodeFrame(payload);
  const rawBytes = encode(message);
  const decoder = new FrameDecoder();
  const decoded = decodeEnvelope(decoder.push(frame)[0]!);
  check(
    decoded.kind === "raft" && decoded.message.type === "app" &&
      decoded.message.entries.length === count,
    `the append of ${count} does not round-trip`,
  );
  const encodeGroup = `append of ${count} × ${VALUE_BYTES} B, encode`;
  const decodeGroup = `append of ${count} × ${VALUE_BYTES} B, decode`;

  Deno.bench({
    name: "msgpack encode() of the message object",
    group: encodeGroup,
    baseline: true,
    fn() {
      _sink = encode(message);
    },
  });
  Deno.bench({
    name: "structuredClone() of the message object",
    group: encodeGroup,
    fn() {
      _sink = structuredClone(message);
    },
  });
  Deno.bench({
    name: "encodeEnvelope()",
    group: encodeGroup,
    fn() {
      _sink = encodeEnvelope(envelope);
    },
  });
  Deno.bench({
    name: "encodeFrame(encodeEnvelope()) (what a peer link writes)",
    group: encodeGroup,
    fn() {
      _sink = encodeFrame(encodeEnvelope(envelope));
    },
  });

  Deno.bench({
    name: "msgpack decode() of the message object's bytes",
    group: decodeGroup,
    baseline: true,
    fn() {
      _sink = decode(rawBytes);
    },
  });
  Deno.bench({
    name: "decodeEnvelope() (validated)",
    group: decodeGroup,
    fn() {
      _sink = decodeEnvelope(payload);
    },
  });
  Deno.bench({
    name: "FrameDecoder.push() + decodeEnvelope() (what a peer link reads)",
    group: decodeGroup,
    fn() {
      _sink = decodeEnvelope(decoder.push(frame)[0]!);
    },
  });
}
