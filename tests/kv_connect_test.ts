/**
 * In-process tests of `kvConnectApp()` with `app.request()`: metadata
 * exchange, authentication, header checks, raw protobuf requests and every
 * error answer, including the ones stock clients never let through.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  AtomicWriteStatus,
  decodeAtomicWriteOutput,
  decodeSnapshotReadOutput,
  decodeWatchOutput,
  encodeAtomicWrite,
  encodeSnapshotRead,
  encodeWatch,
  kvConnectApp,
  MutationType,
  type PbAtomicWrite,
  type PbMutation,
  SnapshotReadStatus,
  ValueEncodingNumber,
} from "../src/frontends/kv_connect/mod.ts";
import { LocalKvBackend } from "../src/server/local_backend.ts";
import {
  type KvBackend,
  KvOutcomeUnknownError,
  KvUnavailableError,
} from "../src/services/kv/api.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import {
  type DataPathTarget,
  postDataPath,
  readFrame,
} from "./helpers/kv_connect_requests.ts";

const TOKEN = "token-one";
const OTHER_TOKEN = "token-two";
const ORIGIN = "http://127.0.0.1:7000";

function setup(
  backend: KvBackend = new LocalKvBackend({ expirySweepIntervalMs: 0 }),
  options: { requestBodyBytesMax?: number; watchPingIntervalMs?: number } = {},
) {
  const app = kvConnectApp({
    backend,
    tokens: [TOKEN, OTHER_TOKEN],
    path: "/kv",
    selfUrl: ORIGIN,
    ...options,
  });
  const target: DataPathTarget = {
    app,
    token: TOKEN,
    databaseId: backend.databaseId,
    endpoint: `${ORIGIN}/kv/strong`,
  };
  return { app, backend, target };
}

function metadataRequest(
  app: ReturnType<typeof setup>["app"],
  headers: Record<string, string>,
  body?: string,
) {
  return app.request(`${ORIGIN}/kv`, { method: "POST", headers, body });
}

function mutation(overrides: Partial<PbMutation>): PbMutation {
  return {
    key: encodeKey(["k"]),
    value: {
      data: new Uint8Array([1]),
      encoding: ValueEncodingNumber.VE_BYTES,
    },
    mutationType: MutationType.M_SET,
    expireAtMs: 0n,
    sumMin: new Uint8Array(0),
    sumMax: new Uint8Array(0),
    sumClamp: false,
    ...overrides,
  };
}

function write(overrides: Partial<PbAtomicWrite>): Uint8Array {
  return encodeAtomicWrite({
    checks: [],
    mutations: [],
    enqueues: [],
    ...overrides,
  });
}

async function expectError(
  response: Response | Promise<Response>,
  status: number,
  message: string | RegExp,
): Promise<void> {
  const answer = await response;
  const text = await answer.text();
  assert.equal(answer.status, status, text);
  if (typeof message === "string") assert.equal(text, message);
  else assert.match(text, message);
  assert.match(answer.headers.get("content-type") ?? "", /^text\/plain/);
}

Deno.test("kvConnectApp() answers the metadata exchange as stock clients validate it", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { app } = setup(backend);
  const before = Date.now();
  const response = await metadataRequest(
    app,
    {
      authorization: `Bearer ${OTHER_TOKEN}`,
      "content-type": "application/json",
    },
    JSON.stringify({ supportedVersions: [1, 2, 3] }),
  );
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  const metadata = await response.json();
  assert.deepEqual(Object.keys(metadata), [
    "version",
    "databaseId",
    "endpoints",
    "token",
    "expiresAt",
  ]);
  assert.equal(metadata.version, 3);
  assert.match(
    metadata.databaseId,
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  );
  assert.equal(metadata.databaseId, backend.databaseId);
  assert.deepEqual(metadata.endpoints, [
    { url: `${ORIGIN}/kv/strong`, consistency: "strong" },
    { url: `${ORIGIN}/kv/eventual`, consistency: "eventual" },
  ]);
  // A data-path token of this client's own, never the access token itself.
  assert.match(
    metadata.token,
    /^aspen-dp1\.[A-Za-z0-9_-]{22}\.\d+\.[A-Za-z0-9_-]{43}$/,
  );
  assert.ok(!metadata.token.includes(OTHER_TOKEN));
  assert.match(metadata.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Date.parse(metadata.expiresAt) >= before + 60 * 60 * 1000);

  const v2 = await metadataRequest(
    app,
    { authorization: `Bearer ${TOKEN}` },
    JSON.stringify({ supportedVersions: [1, 2] }),
  );
  assert.equal((await v2.json()).version, 2);
});

Deno.test("kvConnectApp() refuses bad metadata exchanges", async (t) => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { app } = setup(backend);
  const body = JSON.stringify({ supportedVersions: [1, 2, 3] });
  const cases: [
    string,
    Record<string, string>,
    string | undefined,
    number,
    string | RegExp,
  ][] = [
    ["no authorization", {}, body, 401, "Malformed authorization header."],
    [
      "no scheme",
      { authorization: TOKEN },
      body,
      401,
      "Malformed authorization header.",
    ],
    [
      "wrong token",
      { authorization: "Bearer nope" },
      body,
      401,
      "Invalid access token.",
    ],
    [
      "token prefix",
      { authorization: "Bearer token-on" },
      body,
      401,
      "Invalid access token.",
    ],
    [
      "basic scheme",
      { authorization: `Basic ${TOKEN}` },
      body,
      401,
      "Invalid access token.",
    ],
    [
      "no body",
      { authorization: `Bearer ${TOKEN}` },
      undefined,
      400,
      /at least protocol version 2/,
    ],
    [
      "version 1 only",
      { authorization: `Bearer ${TOKEN}` },
      '{"supportedVersions":[1]}',
      400,
      /could not negotiate a protocol version/,
    ],
    [
      "not JSON",
      { authorization: `Bearer ${TOKEN}` },
      "{",
      400,
      /^Invalid metadata exchange request/,
    ],
    [
      "versions not numbers",
      { authorization: `Bearer ${TOKEN}` },
      '{"supportedVersions":["3"]}',
      400,
      /must be an array of numbers/,
    ],
  ];
  for (const [name, headers, requestBody, status, message] of cases) {
    await t.step(
      name,
      () =>
        expectError(
          metadataRequest(app, headers, requestBody),
          status,
          message,
        ),
    );
  }
  await t.step("oversize body", () =>
    expectError(
      metadataRequest(
        app,
        { authorization: `Bearer ${TOKEN}` },
        " ".repeat(20_000),
      ),
      413,
      /^Request body too large/,
    ));
});

Deno.test("kvConnectApp() checks the data-path headers", async (t) => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { target } = setup(backend);
  const body = encodeSnapshotRead({ ranges: [] });
  const cases: [string, Record<string, string | null>, number, string][] = [
    [
      "no version",
      { "x-denokv-version": null },
      400,
      "Expected protocol version 2 or 3.",
    ],
    [
      "version 1",
      { "x-denokv-version": "1" },
      400,
      "Expected protocol version 2 or 3.",
    ],
    [
      "no authorization",
      { authorization: null },
      401,
      "Malformed authorization header.",
    ],
    [
      "wrong token",
      { authorization: "Bearer nope" },
      401,
      "Invalid access token.",
    ],
    [
      "no database id",
      { "x-denokv-database-id": null },
      400,
      "Invalid database id.",
    ],
    [
      "wrong database id",
      { "x-denokv-database-id": crypto.randomUUID() },
      400,
      "Invalid database id.",
    ],
  ];
  for (const [name, overrides, status, message] of cases) {
    await t.step(
      name,
      () =>
        expectError(
          postDataPath(target, "snapshot_read", body, overrides),
          status,
          message,
        ),
    );
  }
  await t.step("version 2 and the second token pass", async () => {
    const response = await postDataPath(target, "snapshot_read", body, {
      "x-denokv-version": "2",
      authorization: `Bearer ${OTHER_TOKEN}`,
    });
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });
  await t.step(
    "unknown path is 404",
    () =>
      expectError(
        postDataPath(target, "nope", body),
        404,
        "Resource not found.",
      ),
  );
});

Deno.test("kvConnectApp() serves snapshot_read and atomic_write over raw protobuf", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { target } = setup(backend);
  const key = encodeKey(["k"]);
  const written = await postDataPath(
    target,
    "atomic_write",
    write({ mutations: [mutation({})] }),
  );
  assert.equal(written.status, 200);
  assert.equal(written.headers.get("content-type"), "application/x-protobuf");
  const output = decodeAtomicWriteOutput(
    new Uint8Array(await written.arrayBuffer()),
  );
  assert.equal(output.status, AtomicWriteStatus.AW_SUCCESS);
  assert.equal(output.versionstamp.length, 10);

  for (const consistency of ["strong", "eventual"] as const) {
    const response = await postDataPath(
      { ...target, endpoint: `${ORIGIN}/kv/${consistency}` },
      "snapshot_read",
      encodeSnapshotRead({
        ranges: [{
          start: key,
          end: new Uint8Array([...key, 0]),
          limit: 10,
          reverse: false,
        }],
      }),
    );
    assert.equal(response.status, 200);
    const read = decodeSnapshotReadOutput(
      new Uint8Array(await response.arrayBuffer()),
    );
    assert.equal(read.status, SnapshotReadStatus.SR_SUCCESS);
    assert.equal(read.readIsStronglyConsistent, consistency === "strong");
    assert.equal(read.ranges.length, 1);
    assert.deepEqual(
      read.ranges[0]!.values.map((
        e,
      ) => [e.key, e.value, e.encoding, e.versionstamp]),
      [
        [
          key,
          new Uint8Array([1]),
          ValueEncodingNumber.VE_BYTES,
          output.versionstamp,
        ],
      ],
    );
  }

  const failed = await postDataPath(
    target,
    "atomic_write",
    write({
      checks: [{ key, versionstamp: new Uint8Array(0) }, {
        key,
        versionstamp: output.versionstamp,
      }],
      mutations: [mutation({})],
    }),
  );
  const failedOutput = decodeAtomicWriteOutput(
    new Uint8Array(await failed.arrayBuffer()),
  );
  assert.equal(failedOutput.status, AtomicWriteStatus.AW_CHECK_FAILURE);
  assert.deepEqual(failedOutput.failedChecks, [0]);
});

Deno.test("kvConnectApp() stores the enqueues of an atomic_write in the queue", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { target } = setup(backend);
  const written = await postDataPath(
    target,
    "atomic_write",
    write({
      mutations: [mutation({})],
      enqueues: [{
        payload: new Uint8Array([0xff, 0x0f, 0x49, 0x02]),
        deadlineMs: 5000n,
        keysIfUndelivered: [encodeKey(["dead"])],
        backoffSchedule: [],
      }],
    }),
  );
  assert.equal(written.status, 200);
  const output = decodeAtomicWriteOutput(
    new Uint8Array(await written.arrayBuffer()),
  );
  assert.equal(output.status, AtomicWriteStatus.AW_SUCCESS);
  const [message] = backend.stateMachine.peekQueue("", 10);
  assert.deepEqual(message?.payload, new Uint8Array([0xff, 0x0f, 0x49, 0x02]));
  assert.equal(message?.readyAtMs, 5000);
});

Deno.test("kvConnectApp() refuses deterministic errors with 4xx and a message", async (t) => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { target } = setup(backend, { requestBodyBytesMax: 200_000 });
  const key = encodeKey(["k"]);
  await postDataPath(
    target,
    "atomic_write",
    write({
      mutations: [mutation({ key: encodeKey(["text"]) })],
    }),
  );
  const le64 = {
    data: new Uint8Array(8).fill(1),
    encoding: ValueEncodingNumber.VE_LE64,
  };
  const cases: [string, string, Uint8Array, number, string | RegExp][] = [
    [
      "garbage protobuf",
      "atomic_write",
      new Uint8Array([0xff, 0xff, 0xff]),
      400,
      /^Request protobuf is invalid: /,
    ],
    [
      "truncated protobuf",
      "snapshot_read",
      new Uint8Array([0x0a, 0x10, 0x01]),
      400,
      /^Request protobuf is invalid: .*premature EOF/,
    ],
    [
      "wrong wire type",
      "snapshot_read",
      new Uint8Array([0x08, 0x01]),
      400,
      /field 1 has wire type 0, expected 2/,
    ],
    [
      "bad versionstamp length",
      "atomic_write",
      write({ checks: [{ key, versionstamp: new Uint8Array(9) }] }),
      400,
      "Invalid versionstamp.",
    ],
    [
      "unknown mutation type",
      "atomic_write",
      write({ mutations: [mutation({ mutationType: 7 })] }),
      400,
      "Invalid mutation kind or arguments.",
    ],
    [
      "set without value",
      "atomic_write",
      write({ mutations: [mutation({ value: null })] }),
      400,
      "Invalid mutation kind or arguments.",
    ],
    [
      "unknown value encoding",
      "atomic_write",
      write({
        mutations: [
          mutation({ value: { data: new Uint8Array(1), encoding: 9 } }),
        ],
      }),
      400,
      "The value encoding 9 is unknown.",
    ],
    [
      "negative expiry",
      "atomic_write",
      write({ mutations: [mutation({ expireAtMs: -5n })] }),
      400,
      "Invalid mutation expire at.",
    ],
    [
      "le64 of 4 bytes",
      "atomic_write",
      write({
        mutations: [
          mutation({
            value: {
              data: new Uint8Array(4),
              encoding: ValueEncodingNumber.VE_LE64,
            },
          }),
        ],
      }),
      400,
      /a le64 value must be 8 bytes/,
    ],
    [
      "oversize value",
      "atomic_write",
      write({
        mutations: [
          mutation({
            value: {
              data: new Uint8Array(65_537),
              encoding: ValueEncodingNumber.VE_BYTES,
            },
          }),
        ],
      }),
      400,
      "Value too large (max 65536 bytes)",
    ],
    [
      "oversize key",
      "atomic_write",
      write({ mutations: [mutation({ key: new Uint8Array(2049).fill(2) })] }),
      400,
      "Key too large for write (max 2048 bytes)",
    ],
    [
      "empty key",
      "atomic_write",
      write({ mutations: [mutation({ key: new Uint8Array(0) })] }),
      400,
      "key cannot be empty",
    ],
    [
      "too many checks",
      "atomic_write",
      write({
        checks: Array.from(
          { length: 101 },
          () => ({ key, versionstamp: new Uint8Array(0) }),
        ),
      }),
      400,
      "Too many checks (max 100)",
    ],
    [
      "too many mutations",
      "atomic_write",
      write({
        mutations: Array.from(
          { length: 1001 },
          () => mutation({ mutationType: MutationType.M_DELETE }),
        ),
      }),
      400,
      "Too many mutations (max 1000)",
    ],
    [
      "type mismatch",
      "atomic_write",
      write({
        mutations: [
          mutation({
            key: encodeKey(["text"]),
            mutationType: MutationType.M_SUM,
            value: le64,
          }),
        ],
      }),
      400,
      "Failed to perform 'sum' mutation on a non-U64 value in the database",
    ],
    [
      "V8 sum",
      "atomic_write",
      write({
        mutations: [
          mutation({
            mutationType: MutationType.M_SUM,
            value: {
              data: new Uint8Array([0xff, 0x10, 0x49, 0x02]),
              encoding: ValueEncodingNumber.VE_V8,
            },
          }),
        ],
      }),
      400,
      /Cannot sum V8 numbers/,
    ],
    [
      "enqueue to a reserved key",
      "atomic_write",
      write({
        enqueues: [{
          payload: new Uint8Array([1]),
          deadlineMs: 0n,
          keysIfUndelivered: [new Uint8Array([0xff, 1])],
          backoffSchedule: [],
        }],
      }),
      400,
      /keys starting with byte 0xff are reserved/,
    ],
    [
      "read limit 0",
      "snapshot_read",
      encodeSnapshotRead({
        ranges: [{ start: key, end: key, limit: 0, reverse: false }],
      }),
      400,
      "The read range limit of the snapshot read request is invalid.",
    ],
    [
      "too many ranges",
      "snapshot_read",
      encodeSnapshotRead({
        ranges: Array.from(
          { length: 11 },
          () => ({ start: key, end: key, limit: 1, reverse: false }),
        ),
      }),
      400,
      "Too many ranges (max 10)",
    ],
    [
      "too many entries",
      "snapshot_read",
      encodeSnapshotRead({
        ranges: [{ start: key, end: key, limit: 1001, reverse: false }],
      }),
      400,
      "Too many entries (max 1000)",
    ],
    [
      "oversize read key",
      "snapshot_read",
      encodeSnapshotRead({
        ranges: [{
          start: new Uint8Array(2050),
          end: key,
          limit: 1,
          reverse: false,
        }],
      }),
      400,
      "Key too large for read (max 2049 bytes)",
    ],
    [
      "too many watched keys",
      "watch",
      encodeWatch({ keys: Array.from({ length: 11 }, () => key) }),
      400,
      "Too many keys (max 10)",
    ],
    [
      "oversize body",
      "atomic_write",
      new Uint8Array(200_001),
      413,
      "Request body too large (max 200000 bytes)",
    ],
  ];
  for (const [name, method, body, status, message] of cases) {
    await t.step(
      name,
      () => expectError(postDataPath(target, method, body), status, message),
    );
  }
  await t.step("oversize streamed body without content-length", async () => {
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 10) return controller.close();
        sent++;
        controller.enqueue(new Uint8Array(50_000));
      },
    });
    await expectError(
      postDataPath(target, "atomic_write", stream),
      413,
      /^Request body too large/,
    );
    assert.ok(sent < 10, `read ${sent} chunks of 50 kB before refusing`);
  });
  const text = await backend.read([{
    start: encodeKey(["text"]),
    end: encodeKey(["text", 0]),
    limit: 1,
    reverse: false,
  }], "strong");
  assert.equal(text[0]!.length, 1, "refused writes changed nothing");
});

function failingBackend(error: Error): KvBackend {
  return {
    databaseId: crypto.randomUUID(),
    read: () => Promise.reject(error),
    commit: () => Promise.reject(error),
    watch: () => ({
      [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }),
    }),
  };
}

Deno.test("kvConnectApp() answers 503 only when nothing was proposed and never 5xx for an unknown outcome", async (t) => {
  const body = write({ mutations: [mutation({})] });
  await t.step("unavailable read and write: 503", async () => {
    const { target } = setup(
      failingBackend(new KvUnavailableError("no leader")),
    );
    await expectError(
      postDataPath(target, "atomic_write", body),
      503,
      /temporarially unavailable/,
    );
    await expectError(
      postDataPath(target, "snapshot_read", encodeSnapshotRead({ ranges: [] })),
      503,
      /temporarially unavailable/,
    );
  });
  await t.step("outcome unknown: 409", async () => {
    const { target } = setup(
      failingBackend(new KvOutcomeUnknownError("leader lost")),
    );
    await expectError(
      postDataPath(target, "atomic_write", body),
      409,
      /may or may not have been committed.*leader lost/,
    );
  });
  await t.step("unexpected commit error: 409, not 500", async () => {
    const { target } = setup(failingBackend(new Error("boom")));
    await expectError(
      postDataPath(target, "atomic_write", body),
      409,
      /outcome of this write is unknown/,
    );
  });
  await t.step(
    "unexpected read error: 500 (a read is safe to retry)",
    async () => {
      const { target } = setup(failingBackend(new Error("boom")));
      await expectError(
        postDataPath(
          target,
          "snapshot_read",
          encodeSnapshotRead({ ranges: [] }),
        ),
        500,
        "An internal server error occurred.",
      );
    },
  );
});

Deno.test("kvConnectApp() streams watch frames with pings", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { target } = setup(backend, { watchPingIntervalMs: 50 });
  const keys = [encodeKey(["a"]), encodeKey(["b"])];
  const response = await postDataPath(target, "watch", encodeWatch({ keys }));
  assert.equal(response.status, 200);
  assert.equal(
    response.headers.get("content-type"),
    "application/octet-stream",
  );
  const reader = response.body!.getReader();
  const buffered = { bytes: new Uint8Array(0) };
  const first = decodeWatchOutput(await readFrame(reader, buffered));
  assert.equal(first.status, SnapshotReadStatus.SR_SUCCESS);
  assert.deepEqual(first.keys, [
    { changed: true, entryIfChanged: null },
    { changed: true, entryIfChanged: null },
  ]);
  // Nothing changes: only zero-length pings.
  assert.equal((await readFrame(reader, buffered)).length, 0);
  await backend.commit({
    checks: [],
    mutations: [{
      type: "set",
      key: keys[0]!,
      value: { encoding: "bytes", data: new Uint8Array([7]) },
    }],
    enqueues: [],
  });
  let frame = await readFrame(reader, buffered);
  while (frame.length === 0) frame = await readFrame(reader, buffered);
  const change = decodeWatchOutput(frame);
  assert.equal(change.keys.length, 2);
  assert.deepEqual(change.keys[0]!.entryIfChanged?.value, new Uint8Array([7]));
  assert.equal(change.keys[1]!.entryIfChanged, null);
  await reader.cancel();
});
