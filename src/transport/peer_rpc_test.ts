import assert from "node:assert/strict";
import { nodeId } from "../raft/types.ts";
import { PeerHandlerTakenError, PeerRpcRouter } from "./peer_rpc.ts";

Deno.test("PeerRpcRouter dispatches each request kind to its one handler and answers others 'unsupported'", async () => {
  const router = new PeerRpcRouter();
  const seen: string[] = [];
  router.handle("forwardProposal", (request, from) => {
    seen.push(`${from}:${request.data.length}`);
    return Promise.resolve({ ok: true, data: request.data });
  });
  assert.throws(
    () =>
      router.handle(
        "forwardProposal",
        () => Promise.resolve({ ok: true, data: new Uint8Array() }),
      ),
    PeerHandlerTakenError,
  );
  const answer = await router.dispatch(
    { method: "forwardProposal", data: new Uint8Array([1, 2]) },
    nodeId("n2"),
  );
  assert.deepEqual(answer, { ok: true, data: new Uint8Array([1, 2]) });
  assert.deepEqual(seen, ["n2:2"]);
  const refused = await router.dispatch(
    { method: "forwardReadIndex", context: new Uint8Array([1]) },
    nodeId("n2"),
  );
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.code, "unsupported");
});
