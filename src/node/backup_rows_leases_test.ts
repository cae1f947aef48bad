import assert from "node:assert/strict";
import { encodeKey } from "../model/key_codec.ts";
import { logIndex } from "../raft/types.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import { StateHost } from "../state/host.ts";
import { encodeKvEntry } from "../services/entries.ts";
import { encodeLeaseCommand } from "../services/leases/api.ts";
import { SERVICE_IDS, serviceRegistry } from "../services/table.ts";
import type { KvRow } from "../model/types.ts";
import { BackupContentError, BackupRowChecker } from "./_backup_rows.ts";

function leasedState(): { rows: KvRow[]; index: number } {
  const store = new MemoryStateStore();
  const host = new StateHost(
    store,
    serviceRegistry({ store, cluster: undefined as never, knobs: {} }),
  );
  host.applyData(
    logIndex(1),
    encodeEnvelope({
      serviceId: SERVICE_IDS.leases,
      payload: encodeLeaseCommand({
        type: "grant",
        id: "000000000000000a",
        ttlMs: 5000,
      }),
    }),
  );
  host.applyData(
    logIndex(2),
    encodeKvEntry({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [{
          type: "set",
          key: encodeKey(["k"]),
          value: { encoding: "bytes", data: new Uint8Array([1]) },
          lease: "000000000000000a",
        }],
        enqueues: [],
      },
    }),
  );
  const rows = store.scan({
    start: new Uint8Array([0]),
    end: new Uint8Array([0xff, 0xff]),
    limit: 1000,
  });
  return { rows, index: 2 };
}

Deno.test("a backup with leases and attached keys passes the row checks; a bad lease record does not", () => {
  const { rows, index } = leasedState();
  // count, record, attached row, owner row, and the user key.
  assert.equal(
    rows.filter((r) => r.key[0] === 0xff && r.key[1] === 0x6c).length,
    4,
  );
  const chunk = {
    appliedIndex: logIndex(index),
    sequence: 0,
    rows,
    meta: [],
    last: true,
  };
  new BackupRowChecker(index).check(chunk);
  const bad = rows.map((r) =>
    r.key[0] === 0xff && r.key[1] === 0x6c && r.key[2] === 0x01
      ? { ...r, value: new Uint8Array([0xc0]) }
      : r
  );
  assert.throws(
    () => new BackupRowChecker(index).check({ ...chunk, rows: bad }),
    BackupContentError,
  );
});
