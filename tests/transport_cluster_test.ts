import assert from "node:assert/strict";
import {
  acceptHandshake,
  type AuthenticatedPeer,
  certificateNeedsRenewal,
  createJoinToken,
  decodeBase32,
  encodeBase32,
  encodeCertificateRecord,
  encodeCredential,
  HandshakeError,
  initiateHandshake,
  issueCredential,
  keyFromNodeId,
  loadOrCreateNodeIdentity,
  NODE_KEY_FILE,
  nodeIdFromKey,
  NonceRegistry,
  signCertificateRecord,
  verifyCertificateRecord,
  verifyCredential,
} from "../src/cluster/mod.ts";
import type { MembershipContext } from "../src/cluster/handshake.ts";
import {
  channelPair,
  makeClusterKey,
  makeMember,
  type TestMember,
} from "./helpers/transport_cluster.ts";

const clusterKey = await makeClusterKey();
const otherClusterKey = await makeClusterKey();
const server = await makeMember(clusterKey);
const client = await makeMember(clusterKey);

async function handshake(
  clientContext: MembershipContext,
  serverMember: TestMember = server,
  options: {
    purpose?: "raft" | "join";
    joinToken?: Uint8Array;
    nonces?: NonceRegistry;
  } = {},
): Promise<
  {
    server: PromiseSettledResult<AuthenticatedPeer>;
    client: PromiseSettledResult<AuthenticatedPeer>;
  }
> {
  const pair = channelPair();
  const [serverResult, clientResult] = await Promise.allSettled([
    acceptHandshake(
      pair.server,
      serverMember.context,
      serverMember.certificate.hash,
      serverMember.certificateRecord,
      options.nonces ?? new NonceRegistry(),
    ),
    initiateHandshake(pair.client, clientContext, {
      expectedNodeKey: serverMember.identity.publicKey,
      certificateHash: serverMember.certificate.hash,
      purpose: options.purpose,
      joinToken: options.joinToken,
    }),
  ]);
  return { server: serverResult, client: clientResult };
}

function refusedWith(
  result: PromiseSettledResult<unknown>,
  code: string,
  remote = false,
): void {
  assert.equal(result.status, "rejected");
  const error = (result as PromiseRejectedResult).reason;
  assert.ok(error instanceof HandshakeError, String(error));
  assert.equal(error.code, code, error.message);
  assert.equal(error.remote, remote);
}

Deno.test("loadOrCreateNodeIdentity() creates a 0600 key once and reloads the same id", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-identity-" });
  try {
    const first = await loadOrCreateNodeIdentity(dir);
    const info = await Deno.stat(`${dir}/${NODE_KEY_FILE}`);
    assert.equal((info.mode ?? 0) & 0o777, 0o600);
    const again = await loadOrCreateNodeIdentity(dir);
    assert.equal(again.nodeId, first.nodeId);
    assert.equal(first.nodeId.length, 52);
    assert.equal(first.shortId, first.nodeId.slice(0, 10));
    assert.deepEqual(keyFromNodeId(first.nodeId), first.publicKey);
    const signature = await again.sign(new Uint8Array([1]));
    assert.equal(signature.length, 64);
    await Deno.chmod(`${dir}/${NODE_KEY_FILE}`, 0o644);
    await assert.rejects(loadOrCreateNodeIdentity(dir), /readable by others/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeBase32() round-trips and decodeBase32() says what is wrong", () => {
  for (let length = 0; length < 40; length++) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    const text = encodeBase32(bytes);
    assert.match(text, /^[a-z2-7]*$/);
    assert.deepEqual(decodeBase32(text), bytes);
    assert.deepEqual(decodeBase32(text.toUpperCase()), bytes);
  }
  assert.throws(
    () => decodeBase32("abc1"),
    /invalid character at position 3: '1'/,
  );
  assert.throws(() => decodeBase32("a"), /length is impossible/);
  assert.throws(() => nodeIdFromKey(new Uint8Array(31)), RangeError);
});

Deno.test("verifyCertificateRecord() accepts only the node key's own signature", async () => {
  const record = await signCertificateRecord(
    server.identity,
    server.certificate,
  );
  const bytes = encodeCertificateRecord(record);
  const verified = await verifyCertificateRecord(
    bytes,
    server.identity.publicKey,
  );
  assert.deepEqual(verified?.certificateHash, server.certificate.hash);
  assert.equal(
    await verifyCertificateRecord(bytes, client.identity.publicKey),
    null,
  );
  const tampered = encodeCertificateRecord({
    ...record,
    certificateHash: new Uint8Array(32),
  });
  assert.equal(
    await verifyCertificateRecord(tampered, server.identity.publicKey),
    null,
  );
  assert.equal(
    await verifyCertificateRecord(
      new Uint8Array([0xc1]),
      server.identity.publicKey,
    ),
    null,
  );
  assert.match(server.certificate.certificatePem, /BEGIN CERTIFICATE/);
  assert.equal(certificateNeedsRenewal(server.certificate, Date.now()), true); // 1 h of validity left
  assert.equal(
    certificateNeedsRenewal(server.certificate, Date.now(), 60_000),
    false,
  );
});

Deno.test("verifyCredential() names each problem", async () => {
  const credential = encodeCredential(
    await issueCredential(clusterKey, client.identity.publicKey),
  );
  const ok = await verifyCredential(
    credential,
    clusterKey.publicKey,
    client.identity.publicKey,
  );
  assert.equal(typeof ok, "object");
  assert.equal(
    await verifyCredential(
      credential,
      otherClusterKey.publicKey,
      client.identity.publicKey,
    ),
    "wrongCluster",
  );
  assert.equal(
    await verifyCredential(
      credential,
      clusterKey.publicKey,
      server.identity.publicKey,
    ),
    "wrongNode",
  );
  const forged = await issueCredential(
    otherClusterKey,
    client.identity.publicKey,
  );
  const relabeled = encodeCredential({
    ...forged,
    clusterId: clusterKey.publicKey,
  });
  assert.equal(
    await verifyCredential(
      relabeled,
      clusterKey.publicKey,
      client.identity.publicKey,
    ),
    "badSignature",
  );
  assert.equal(
    await verifyCredential(
      new Uint8Array([1, 2]),
      clusterKey.publicKey,
      client.identity.publicKey,
    ),
    "malformed",
  );
});

Deno.test("acceptHandshake() and initiateHandshake() authenticate two members", async () => {
  const result = await handshake(client.context);
  assert.equal(result.server.status, "fulfilled");
  assert.equal(result.client.status, "fulfilled");
  const seenByServer =
    (result.server as PromiseFulfilledResult<AuthenticatedPeer>).value;
  const seenByClient =
    (result.client as PromiseFulfilledResult<AuthenticatedPeer>).value;
  assert.equal(seenByServer.nodeId, client.identity.nodeId);
  assert.equal(seenByServer.purpose, "raft");
  assert.equal(seenByClient.nodeId, server.identity.nodeId);
  assert.deepEqual(
    seenByClient.certificateRecord?.certificateHash,
    server.certificate.hash,
  );
});

Deno.test("acceptHandshake() refuses a bad signature", async () => {
  const impostor = await makeMember(clusterKey);
  // Claims the client's key and credential but signs with another key.
  const context = {
    ...client.context,
    identity: { ...client.identity, sign: impostor.identity.sign },
  };
  const result = await handshake(context);
  refusedWith(result.server, "badSignature");
  refusedWith(result.client, "badSignature", true);
});

Deno.test("acceptHandshake() refuses a handshake replayed from another connection", async () => {
  const nonces = new NonceRegistry();
  const first = channelPair();
  await Promise.all([
    acceptHandshake(
      first.server,
      server.context,
      server.certificate.hash,
      server.certificateRecord,
      nonces,
    ),
    initiateHandshake(first.client, client.context, {
      expectedNodeKey: server.identity.publicKey,
      certificateHash: server.certificate.hash,
    }),
  ]);
  const [hello, proof] = first.sentByClient;
  assert.equal(hello?.kind, "hello");
  assert.equal(proof?.kind, "proof");
  for (const registry of [nonces, new NonceRegistry()]) {
    const second = channelPair();
    const serving = acceptHandshake(
      second.server,
      server.context,
      server.certificate.hash,
      server.certificateRecord,
      registry,
    );
    serving.catch(() => {});
    await second.client.send(hello!);
    const reply = await second.client.receive();
    if (registry === nonces) {
      // The same nonce within the registry's memory: named as a replay.
      assert.equal(reply.kind, "close");
      assert.equal(reply.kind === "close" && reply.code, "replayedNonce");
      await assert.rejects(
        serving,
        (e: unknown) =>
          e instanceof HandshakeError && e.code === "replayedNonce",
      );
    } else {
      // Beyond the registry's memory the fresh server nonce still defeats it.
      assert.equal(reply.kind, "challenge");
      await second.client.send(proof!);
      const verdict = await second.client.receive();
      assert.equal(verdict.kind === "close" && verdict.code, "badSignature");
      await assert.rejects(
        serving,
        (e: unknown) =>
          e instanceof HandshakeError && e.code === "badSignature",
      );
    }
  }
});

Deno.test("acceptHandshake() refuses a credential from another cluster", async () => {
  const stranger = await makeMember(otherClusterKey);
  // The stranger claims our cluster id but holds the other cluster's credential.
  const result = await handshake({
    ...stranger.context,
    clusterId: clusterKey.publicKey,
  });
  refusedWith(result.server, "wrongCluster");
  refusedWith(result.client, "wrongCluster", true);
  // Claiming its own cluster is refused at hello.
  const direct = await handshake(stranger.context);
  refusedWith(direct.server, "wrongCluster");
});

Deno.test("acceptHandshake() refuses a revoked credential, read at each handshake", async () => {
  server.revoked.add(client.identity.nodeId);
  try {
    const result = await handshake(client.context);
    refusedWith(result.server, "revoked");
    refusedWith(result.client, "revoked", true);
  } finally {
    server.revoked.delete(client.identity.nodeId);
  }
  assert.equal((await handshake(client.context)).server.status, "fulfilled");
});

Deno.test("initiateHandshake() refuses a revoked server and a server with another key", async () => {
  client.revoked.add(server.identity.nodeId);
  try {
    refusedWith((await handshake(client.context)).client, "revoked");
  } finally {
    client.revoked.delete(server.identity.nodeId);
  }
  const other = await makeMember(clusterKey);
  const pair = channelPair();
  const serving = acceptHandshake(
    pair.server,
    other.context,
    other.certificate.hash,
    other.certificateRecord,
    new NonceRegistry(),
  );
  serving.catch(() => {});
  await assert.rejects(
    initiateHandshake(pair.client, client.context, {
      expectedNodeKey: server.identity.publicKey,
      certificateHash: other.certificate.hash,
    }),
    (e: unknown) => e instanceof HandshakeError && e.code === "wrongPeer",
  );
});

Deno.test("acceptHandshake() admits a join token only for a join, never for Raft", async () => {
  const token = createJoinToken();
  const joiningServer = await makeMember(clusterKey, { joinTokens: [token] });
  const joiner = await makeMember(clusterKey, { credential: false });
  const asRaft = await handshake(joiner.context, joiningServer, {
    purpose: "raft",
  });
  refusedWith(asRaft.server, "badCredential");
  // A token presented in place of a credential on a Raft handshake.
  const tokenForRaft = await handshake(
    { ...joiner.context, credential: null },
    joiningServer,
    { purpose: "join", joinToken: token },
  );
  assert.equal(tokenForRaft.server.status, "fulfilled");
  assert.equal(
    (tokenForRaft.server as PromiseFulfilledResult<AuthenticatedPeer>).value
      .purpose,
    "join",
  );
  const badToken = await handshake(joiner.context, joiningServer, {
    purpose: "join",
    joinToken: createJoinToken(),
  });
  refusedWith(badToken.server, "badJoinToken");
});

Deno.test("acceptHandshake() refuses a join token sent as a Raft proof", async () => {
  const token = createJoinToken();
  const joiningServer = await makeMember(clusterKey, { joinTokens: [token] });
  const joiner = await makeMember(clusterKey, { credential: false });
  // A correctly signed Raft handshake carrying a valid token instead of a credential.
  const result = await handshake(joiner.context, joiningServer, {
    purpose: "raft",
    joinToken: token,
  });
  refusedWith(result.server, "joinTokenForRaft");
  refusedWith(result.client, "joinTokenForRaft", true);
});
