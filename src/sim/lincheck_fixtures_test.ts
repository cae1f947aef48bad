import assert from "node:assert/strict";
import { checkOperations, kvModel, registerModel } from "./lincheck.ts";
import { parseJepsenEtcdLog, parsePorcupineKvLog } from "./history_formats.ts";

const fixtures = new URL("../../fixtures/linearizability/", import.meta.url);

/** expected.txt: `N true|false` per line; a history not listed (empty) is linearizable. */
function expectedVerdicts(): Map<number, boolean> {
  const text = Deno.readTextFileSync(new URL("jepsen/expected.txt", fixtures));
  return new Map(
    text.trim().split("\n").map((line) => {
      const [number, verdict] = line.trim().split(/\s+/);
      assert.ok(
        verdict === "true" || verdict === "false",
        `Bad expected.txt line: ${line}`,
      );
      return [Number(number), verdict === "true"];
    }),
  );
}

Deno.test("checkOperations() matches expected.txt on every Jepsen etcd fixture", async (t) => {
  const expected = expectedVerdicts();
  const files = [...Deno.readDirSync(new URL("jepsen/", fixtures))]
    .map((entry) => entry.name)
    .filter((name) => /^etcd_\d{3}\.log$/.test(name))
    .sort();
  assert.equal(files.length, 103);
  for (const name of files) {
    const number = Number(name.slice(5, 8));
    const linearizable = expected.get(number) ?? true;
    await t.step(`${name} is ${linearizable ? "" : "not "}linearizable`, () => {
      const text = Deno.readTextFileSync(new URL(`jepsen/${name}`, fixtures));
      if (!expected.has(number)) {
        assert.equal(text.trim(), "", "Only empty histories are unlisted");
      }
      const result = checkOperations(registerModel, parseJepsenEtcdLog(text));
      assert.equal(
        result.verdict,
        linearizable ? "linearizable" : "not linearizable",
      );
    });
  }
});

Deno.test("checkOperations() decides every Porcupine kv fixture", async (t) => {
  for (const clients of ["c01", "c10", "c50"]) {
    for (const linearizable of [true, false]) {
      const name = `${clients}-${linearizable ? "ok" : "bad"}.txt`;
      await t.step(name, () => {
        const text = Deno.readTextFileSync(new URL(`kv/${name}`, fixtures));
        const result = checkOperations(kvModel, parsePorcupineKvLog(text));
        assert.equal(
          result.verdict,
          linearizable ? "linearizable" : "not linearizable",
        );
        if (!linearizable) {
          assert.match(result.detail?.partition ?? "", /^key "\d+"$/);
          assert.ok((result.detail?.operations.length ?? 0) > 0);
        }
      });
    }
  }
});
