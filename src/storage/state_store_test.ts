import { runStateStoreConformance } from "./state_store_conformance.ts";
import { MemoryStateStore } from "./memory_state_store.ts";
import { SqliteStateStore } from "./sqlite_state_store.ts";
import type { StateStore } from "../state/state_store.ts";

runStateStoreConformance("MemoryStateStore", () => {
  const store = new MemoryStateStore();
  return { store, dispose: () => store.close() };
});

runStateStoreConformance("SqliteStateStore", () => {
  const directory = Deno.makeTempDirSync({ prefix: "aspen_kv_state_" });
  const path = `${directory}/state.sqlite`;
  let current: StateStore = new SqliteStateStore({ path });
  return {
    get store() {
      return current;
    },
    reopen: () => {
      current.close();
      current = new SqliteStateStore({ path });
      return current;
    },
    dispose: () => {
      current.close();
      Deno.removeSync(directory, { recursive: true });
    },
  };
});
