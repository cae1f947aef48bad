import { checkOperations, kvModel } from "../src/sim/lincheck.ts";
import { parsePorcupineKvLog } from "../src/sim/history_formats.ts";

const fixtures = new URL("../fixtures/linearizability/kv/", import.meta.url);
const c10 = parsePorcupineKvLog(
  Deno.readTextFileSync(new URL("c10-ok.txt", fixtures)),
);
const c50 = parsePorcupineKvLog(
  Deno.readTextFileSync(new URL("c50-ok.txt", fixtures)),
);

Deno.bench({
  name: "checkOperations(kvModel) kv/c10-ok.txt",
  group: "lincheck kv",
  baseline: true,
  fn() {
    if (checkOperations(kvModel, c10).verdict !== "linearizable") {
      throw new Error("Expected linearizable");
    }
  },
});

Deno.bench({
  name: "checkOperations(kvModel) kv/c50-ok.txt",
  group: "lincheck kv",
  fn() {
    if (checkOperations(kvModel, c50).verdict !== "linearizable") {
      throw new Error("Expected linearizable");
    }
  },
});
