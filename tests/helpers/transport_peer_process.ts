/// <reference lib="deno.unstable" />
/**
 * A peer node in its own process, for the two-process test. Usage:
 * `deno run --unstable-net --allow-net=127.0.0.1 --allow-read=<dir> transport_peer_process.ts <dir>`.
 * It loads its node key from `<dir>`, reads `<dir>/peer.json` (cluster id,
 * its credential, the parent's address), makes a fresh certificate, prints
 * one JSON line `{port, certificateRecord}` and then answers the parent
 * (`peer.json` may also fix the `port` and the `idleTimeoutMs`, and ask to
 * keep the certificate in the folder with `persistCertificate`):
 * every AppendEntries with an AppendEntries response, every request by
 * echoing its data. It exits when stdin closes.
 *
 * @module
 */
import {
  createNodeCertificate,
  encodeCertificateRecord,
  signCertificateRecord,
} from "../../src/cluster/certificate.ts";
import { decodeBase32, encodeBase32 } from "../../src/base/base32.ts";
import { loadOrCreateNodeIdentity } from "../../src/cluster/identity.ts";
import { QuicTransport } from "../../src/transport/quic_transport.ts";
import { loadOrCreateCertificate } from "../../src/node/data_dir.ts";
import { logIndex, nodeId } from "../../src/raft/types.ts";

const dir = Deno.args[0];
if (dir === undefined) {
  throw new TypeError("Cannot start peer process: pass the data folder");
}
const config = JSON.parse(await Deno.readTextFile(`${dir}/peer.json`));
const identity = await loadOrCreateNodeIdentity(dir);
// With `persistCertificate`, kept in the folder like a node's (a restart
// serves the same one); otherwise fresh.
const certificate = config.persistCertificate === true
  ? await loadOrCreateCertificate(dir, identity, ["127.0.0.1"])
  : await createNodeCertificate(identity, { validityMs: 3600_000 });
const record = encodeCertificateRecord(
  await signCertificateRecord(identity, certificate),
);
const transport = await QuicTransport.listen({
  membership: {
    identity,
    clusterId: decodeBase32(config.clusterId),
    credential: decodeBase32(config.credential),
    revoked: new Set(),
  },
  certificate,
  certificateRecord: record,
  hostname: "127.0.0.1",
  // Optional: a fixed port (a restart binds its old one) and idle timeout.
  ...(config.port === undefined ? {} : { port: config.port }),
  ...(config.idleTimeoutMs === undefined
    ? {}
    : { idleTimeoutMs: config.idleTimeoutMs }),
  log: (event) => {
    if (event.level === "warn") {
      console.error(`${event.code}: ${event.message}`);
    }
  },
});
transport.setPeer({
  nodeId: nodeId(config.parent.nodeId),
  hostname: "127.0.0.1",
  port: config.parent.port,
  nodeKey: decodeBase32(config.parent.nodeKey),
  certificateHash: decodeBase32(config.parent.certificateHash),
});
transport.onMessage((message) => {
  if (message.type !== "app") return;
  const last = message.entries.at(-1)?.index ?? message.index;
  transport.send(message.from, {
    type: "appResp",
    from: identity.nodeId,
    to: message.from,
    term: message.term,
    index: last,
    reject: false,
    rejectHint: logIndex(0),
    logTerm: message.term,
  });
});
transport.onRequest((request) =>
  Promise.resolve(
    request.method === "forwardProposal" ? { ok: true, data: request.data } : {
      ok: false,
      code: "notLeader",
      message: "Not the leader",
      leader: null,
    },
  )
);
console.log(
  JSON.stringify({
    port: transport.addr.port,
    certificateRecord: encodeBase32(record),
  }),
);
// Run until the parent closes stdin (or kills us).
for await (const _ of Deno.stdin.readable) { /* ignore input */ }
await transport.close();
