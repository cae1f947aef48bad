/** The member directory: one owner of member addresses, with change events. */
import assert from "node:assert/strict";
import {
  MemberDirectory,
  type MemberDirectoryChange,
} from "../src/cluster/member_directory.ts";
import type { NodeAddress } from "../src/protocol/cluster.ts";

function address(id: string, port: number, hash = "h"): NodeAddress {
  return {
    nodeId: id,
    httpUrl: `http://127.0.0.1:${port}`,
    quicHost: "127.0.0.1",
    quicPort: port,
    nodeKey: `key-${id}`,
    certificateHash: hash,
  };
}

Deno.test("MemberDirectory starts from the file's members, keeps its own address, and lists itself first", () => {
  const self = address("a", 1000, "new");
  const directory = new MemberDirectory(self, [
    address("b", 2000),
    address("a", 999, "old"), // the file's stale entry of this node
    address("c", 3000),
  ]);
  assert.deepEqual(directory.list().map((m) => m.nodeId), ["a", "b", "c"]);
  assert.deepEqual(directory.peers().map((m) => m.nodeId), ["b", "c"]);
  assert.equal(directory.get("a"), self);
  assert.equal(directory.httpUrl("c"), "http://127.0.0.1:3000");
  assert.equal(directory.httpUrl("zz"), null);
  assert.equal(directory.httpUrl(null), null);
});

Deno.test("MemberDirectory.merge() reports only new or changed addresses and never overwrites its own", () => {
  const directory = new MemberDirectory(address("a", 1000), [
    address("b", 2000),
  ]);
  const changes: MemberDirectoryChange[] = [];
  const unsubscribe = directory.subscribe((change) => changes.push(change));
  assert.deepEqual(directory.merge([address("b", 2000)]), []);
  assert.equal(changes.length, 0, "an unchanged address is no event");
  const changed = directory.merge([
    address("a", 5555), // a replicated old entry of this node: ignored
    address("b", 2001),
    address("c", 3000),
  ]);
  assert.deepEqual(changed.map((m) => m.quicPort), [2001, 3000]);
  assert.equal(changes.length, 1, "one event per merge");
  assert.deepEqual(changes[0]!.changed.map((m) => m.nodeId), ["b", "c"]);
  assert.deepEqual(changes[0]!.members.map((m) => m.nodeId), ["a", "b", "c"]);
  assert.equal(directory.self.quicPort, 1000);
  unsubscribe();
  directory.merge([address("d", 4000)]);
  assert.equal(changes.length, 1, "no events after unsubscribing");
});

Deno.test("MemberDirectory.setSelf() changes this node's address only", () => {
  const directory = new MemberDirectory(address("a", 1000));
  const events: string[][] = [];
  directory.subscribe((c) => events.push(c.changed.map((m) => m.nodeId)));
  directory.setSelf(address("a", 1000, "rotated"));
  assert.equal(directory.self.certificateHash, "rotated");
  assert.deepEqual(events, [["a"]]);
  directory.setSelf(address("a", 1000, "rotated"));
  assert.equal(events.length, 1, "the same address is no event");
  assert.throws(() => directory.setSelf(address("b", 1)), RangeError);
});
