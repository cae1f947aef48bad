import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import {
  createJoinToken,
  encodeBase32,
  formatTicket,
  type JoinTicket,
  parseTicket,
  type TicketNode,
  ticketNodeId,
  TicketParseError,
} from "../src/cluster/mod.ts";

const clusterId = crypto.getRandomValues(new Uint8Array(32));
const node = (i: number): TicketNode => ({
  nodeKey: crypto.getRandomValues(new Uint8Array(32)),
  httpUrls: [`http://127.0.0.1:${4000 + i}`],
  quicAddresses: [`127.0.0.1:${5000 + i}`],
});

Deno.test("formatTicket() and parseTicket() round-trip client and join tickets", () => {
  const nodes = Array.from({ length: 16 }, (_, i) => node(i));
  const client = formatTicket({ kind: "client", clusterId, nodes });
  assert.match(client, /^aspen[a-z2-7]+$/);
  assert.deepEqual(parseTicket(client), { kind: "client", clusterId, nodes });
  const join: JoinTicket = {
    kind: "join",
    clusterId,
    nodes: nodes.slice(0, 1),
    joinToken: createJoinToken(),
  };
  const text = formatTicket(join);
  assert.deepEqual(parseTicket(`  ${text}\n`), join);
  assert.equal(ticketNodeId(nodes[0]!).length, 52);
  // A client ticket never carries the token.
  assert.ok(
    !formatTicket({ ...join, kind: "client" } as never).includes(
      encodeBase32(join.joinToken).slice(0, 20),
    ),
  );
  assert.throws(
    () =>
      formatTicket({ kind: "client", clusterId, nodes: [...nodes, node(17)] }),
    RangeError,
  );
});

Deno.test("parseTicket() says what is wrong", async (t) => {
  const ticket = (payload: unknown) => "aspen" + encodeBase32(encode(payload));
  const good = [[node(0).nodeKey, [], ["127.0.0.1:1"]]];
  const cases: [string, string, RegExp][] = [
    [
      "wrong prefix",
      "iroh" + encodeBase32(new Uint8Array(4)),
      /must start with 'aspen'/,
    ],
    ["bad base32", "aspen!!!!", /invalid character at position 0/],
    [
      "not msgpack",
      "aspen" + encodeBase32(new Uint8Array([0xc1])),
      /not valid MessagePack/,
    ],
    [
      "truncated",
      formatTicket({ kind: "client", clusterId, nodes: [node(1)] }).slice(
        0,
        40,
      ),
      /not valid MessagePack|length is impossible/,
    ],
    [
      "future version",
      ticket([2, 0, clusterId, good]),
      /version is unsupported: 2/,
    ],
    ["unknown kind", ticket([1, 7, clusterId, good]), /kind is unknown: 7/],
    [
      "short cluster id",
      ticket([1, 0, new Uint8Array(3), good]),
      /cluster id must be 32 bytes/,
    ],
    ["no nodes", ticket([1, 0, clusterId, []]), /1 to 16 nodes/],
    [
      "bad node key",
      ticket([1, 0, clusterId, [[new Uint8Array(2), [], []]]]),
      /node 0 key must be 32 bytes/,
    ],
    [
      "bad address",
      ticket([1, 0, clusterId, [[node(0).nodeKey, [5], []]]]),
      /node 0 HTTP URLs holds an invalid entry/,
    ],
    [
      "client with token",
      ticket([1, 0, clusterId, good, createJoinToken()]),
      /client ticket must not carry/,
    ],
    [
      "join without token",
      ticket([1, 1, clusterId, good]),
      /join ticket must carry a join token/,
    ],
    [
      "short token",
      ticket([1, 1, clusterId, good, new Uint8Array(4)]),
      /join token must be 16 to 256 bytes/,
    ],
  ];
  for (const [name, text, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => parseTicket(text), (error: unknown) => {
        assert.ok(error instanceof TicketParseError, String(error));
        assert.match(error.message, message);
        return true;
      });
    });
  }
});
