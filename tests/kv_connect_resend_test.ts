/**
 * In-process tests of the stock-client resend guarantee (issue 12 item 0):
 * per-client data-path tokens from the metadata exchange, verified by any
 * node with the same access tokens; a resend (same token, same bytes) of a
 * write that applied is answered with its first result, on the same node or
 * on a "restarted" one (a new app over the same state); a write the node
 * already answered, or one in flight twice at once, is a new write.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  AtomicWriteStatus,
  decodeAtomicWriteOutput,
  encodeAtomicWrite,
  kvConnectApp,
  MutationType,
  ValueEncodingNumber,
} from "../src/frontends/kv_connect/mod.ts";
import { LocalKvBackend } from "../src/server/local_backend.ts";
import {
  type KvBackend,
  type KvCommitResult,
  KvOutcomeUnknownError,
} from "../src/services/kv/api.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import type { KvAtomicOperation } from "../src/model/types.ts";
import { postDataPath } from "./helpers/kv_connect_requests.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "token-one";
const ORIGIN = "http://127.0.0.1:7000";

function app(
  backend: KvBackend,
  tokens = [TOKEN],
  options: { now?: () => number; deliveryMarkDelayMs?: number } = {},
) {
  return kvConnectApp({
    backend,
    tokens,
    path: "/kv",
    selfUrl: ORIGIN,
    ...options,
  });
}

async function dataToken(
  server: ReturnType<typeof app>,
  accessToken = TOKEN,
): Promise<string> {
  const response = await server.request(`${ORIGIN}/kv`, {
    method: "POST",
    headers: { authorization: `Bearer ${accessToken}` },
    body: JSON.stringify({ supportedVersions: [3] }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}

/** A stock client's `atomic().sum(["n"], 1n)`. */
const SUM = encodeAtomicWrite({
  checks: [],
  mutations: [{
    key: encodeKey(["n"]),
    value: {
      data: new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]),
      encoding: ValueEncodingNumber.VE_LE64,
    },
    mutationType: MutationType.M_SUM,
    expireAtMs: 0n,
    sumMin: new Uint8Array(0),
    sumMax: new Uint8Array(0),
    sumClamp: false,
  }],
  enqueues: [],
});

async function send(
  server: ReturnType<typeof app>,
  backend: KvBackend,
  token: string,
): Promise<Response> {
  return await postDataPath(
    {
      app: server,
      token,
      databaseId: backend.databaseId,
      endpoint: `${ORIGIN}/kv/strong`,
    },
    "atomic_write",
    SUM,
  );
}

async function versionstampOf(response: Response): Promise<string> {
  assert.equal(response.status, 200);
  const output = decodeAtomicWriteOutput(
    new Uint8Array(await response.arrayBuffer()),
  );
  assert.equal(output.status, AtomicWriteStatus.AW_SUCCESS);
  return [...output.versionstamp].join(",");
}

async function counter(backend: KvBackend): Promise<bigint> {
  const ranges = await backend.read([{
    start: encodeKey(["n"]),
    end: new Uint8Array([...encodeKey(["n"]), 0]),
    limit: 1,
    reverse: false,
  }], "strong");
  const entry = ranges[0]?.[0];
  if (entry === undefined) return 0n;
  return new DataView(entry.value.data.buffer, entry.value.data.byteOffset)
    .getBigUint64(0, true);
}

/** `inner`, with some of its methods replaced. */
function overriding(
  inner: LocalKvBackend,
  overrides: Partial<Pick<KvBackend, "commit" | "markResendsDelivered">>,
): KvBackend {
  return new Proxy(inner, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) {
        return overrides[property as keyof typeof overrides];
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Applies each commit, then loses the answer of the first `lose` of them. */
function losing(inner: LocalKvBackend, lose: number): KvBackend {
  return overriding(inner, {
    async commit(operation: KvAtomicOperation): Promise<KvCommitResult> {
      const result = await inner.commit(operation);
      if (lose > 0) {
        lose--;
        throw new KvOutcomeUnknownError("the entry node died before answering");
      }
      return result;
    },
  });
}

Deno.test("KV Connect data-path tokens: one per metadata exchange, verified by every node with the same access token, refused otherwise", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const first = app(backend);
  const token = await dataToken(first);
  assert.notEqual(token, await dataToken(first), "one token per exchange");
  // Another node (or the same node restarted) accepts it.
  assert.equal((await send(app(backend), backend, token)).status, 200);
  // A node with other access tokens does not; nor a tampered token.
  assert.equal(
    (await send(app(backend, ["other"]), backend, token)).status,
    401,
  );
  const tampered = token.slice(0, -2) + (token.endsWith("AA") ? "BB" : "AA");
  assert.equal((await send(first, backend, tampered)).status, 401);
  // Nor an expired one.
  const late = app(backend, [TOKEN], {
    now: () => Date.now() + 3 * 60 * 60 * 1000,
  });
  assert.equal((await send(late, backend, token)).status, 401);
  // The access token itself still works on the data path.
  assert.equal((await send(first, backend, TOKEN)).status, 200);
});

Deno.test("KV Connect: a stock resend of a write that applied but whose answer was lost is answered with its first result, on the same node or a restarted one", async () => {
  using inner = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const backend = losing(inner, 1);
  const node = app(backend);
  const token = await dataToken(node);
  // Applied, answer lost: the client sees 409 (outcome unknown) or an error.
  assert.equal((await send(node, backend, token)).status, 409);
  assert.equal(await counter(inner), 1n);
  // The resend, same token, same bytes: not applied again.
  const resent = await versionstampOf(await send(node, backend, token));
  assert.equal(await counter(inner), 1n);
  // The same node answered it: a further identical write is a new write.
  const next = await versionstampOf(await send(node, backend, token));
  assert.notEqual(next, resent);
  assert.equal(await counter(inner), 2n);

  // The entry node dies after applying: the restarted node (a new process,
  // nothing in memory) answers the resend with the first result.
  const dying = losing(inner, 1);
  const before = app(dying);
  const other = await dataToken(before);
  assert.equal((await send(before, dying, other)).status, 409);
  assert.equal(await counter(inner), 3n);
  const restarted = app(inner);
  await versionstampOf(await send(restarted, inner, other));
  assert.equal(await counter(inner), 3n);
});

Deno.test("KV Connect: identical stock writes in flight at once, or sent with the access token itself, are separate writes", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const node = app(backend);
  const token = await dataToken(node);
  const stamps = await Promise.all(
    [1, 2, 3].map(async () => versionstampOf(await send(node, backend, token))),
  );
  assert.equal(new Set(stamps).size, 3);
  assert.equal(await counter(backend), 3n);
  await versionstampOf(await send(node, backend, TOKEN));
  await versionstampOf(await send(app(backend), backend, TOKEN));
  assert.equal(await counter(backend), 5n);
});

Deno.test("KV Connect: a write whose client went away before its answer is merged with the resend that follows", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const node = app(backend);
  const token = await dataToken(node);
  const gone = new AbortController();
  gone.abort();
  // The connection reset while the node served it: applied, never delivered.
  await node.request(`${ORIGIN}/kv/strong/atomic_write`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "x-denokv-version": "3",
      "x-denokv-database-id": backend.databaseId,
    },
    body: SUM as Uint8Array<ArrayBuffer>,
    signal: gone.signal,
  });
  assert.equal(await counter(backend), 1n);
  await versionstampOf(await send(node, backend, token));
  assert.equal(await counter(backend), 1n);
});

/** Counts the delivery marks proposed through it. */
function counting(
  inner: LocalKvBackend,
): { backend: KvBackend; marks: () => number } {
  let marks = 0;
  const backend = overriding(inner, {
    markResendsDelivered(batch) {
      marks += batch.length;
      return inner.markResendsDelivered(batch);
    },
  });
  return { backend, marks: () => marks };
}

Deno.test("KV Connect: a write repeated on purpose after the node that answered the first one restarted is a new write (the delivery was marked)", async () => {
  using inner = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { backend, marks } = counting(inner);
  const node = app(backend, [TOKEN], { deliveryMarkDelayMs: 20 });
  const token = await dataToken(node);
  const first = await versionstampOf(await send(node, backend, token));
  // The node lives on past the delay: its mark is proposed.
  await waitFor(() => "the delivery mark", () => marks() === 1, {
    timeoutMs: 10_000,
    intervalMs: 5,
  });
  // The node restarts: the new process knows nothing, the cluster knows the
  // first answer was delivered.
  const restarted = app(backend);
  const second = await versionstampOf(await send(restarted, backend, token));
  assert.notEqual(second, first);
  assert.equal(await counter(inner), 2n);
});

Deno.test("KV Connect: a node killed just after handing an answer over proposed no delivery mark, so the client's resend to it restarted is not applied again", async () => {
  // The answer's bytes may die with the process: only a node that lives on
  // for the delay marks the delivery (the mark once went out at once, and a
  // stock client's resend after a kill -9 applied a second time).
  using inner = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { backend, marks } = counting(inner);
  const node = app(backend);
  const token = await dataToken(node);
  const first = await versionstampOf(await send(node, backend, token));
  assert.equal(marks(), 0);
  // Killed now; the stock client never read the answer and resends.
  const restarted = app(inner);
  const resent = await versionstampOf(await send(restarted, inner, token));
  assert.equal(resent, first);
  assert.equal(await counter(inner), 1n);
});

Deno.test("KV Connect: a repeat on the same live node proposes the earlier delivery mark at once, and the repeat applies", async () => {
  using inner = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const { backend, marks } = counting(inner);
  const node = app(backend);
  const token = await dataToken(node);
  const first = await versionstampOf(await send(node, backend, token));
  const second = await versionstampOf(await send(node, backend, token));
  assert.notEqual(second, first);
  // The repeat did not wait out the delay: it urged the first mark.
  assert.equal(marks(), 1);
  assert.equal(await counter(inner), 2n);
  // Its own answer's resend after a kill merges with it, not with the first.
  const restarted = app(inner);
  assert.equal(
    await versionstampOf(await send(restarted, inner, token)),
    second,
  );
  assert.equal(await counter(inner), 2n);
});
