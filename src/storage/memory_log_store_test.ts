import { MemoryLogStore } from "./memory_log_store.ts";
import { runLogStoreConformance } from "./log_store_conformance.ts";

runLogStoreConformance("MemoryLogStore", () => {
  const store = new MemoryLogStore();
  return Promise.resolve({
    store,
    cleanup: () => Promise.resolve(store.close()),
  });
});
