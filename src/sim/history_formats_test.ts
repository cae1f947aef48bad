import assert from "node:assert/strict";
import {
  detectHistoryFormat,
  HistoryFormatError,
  parseJepsenEtcdLog,
  parsePorcupineKvLog,
} from "./history_formats.ts";

const jepsen = (lines: string[]) =>
  lines.map((line) => `INFO  jepsen.util - ${line}`).join("\n") + "\n";

Deno.test("parseJepsenEtcdLog() reads outcomes", () => {
  const ops = parseJepsenEtcdLog(jepsen([
    "0\t:invoke\t:write\t3",
    "1\t:invoke\t:read\tnil",
    "2 :invoke :cas [3 4]",
    "3\t:invoke\t:cas\t[1 2]",
    "4\t:invoke\t:read\tnil",
    "0\t:ok\t:write\t3",
    "1\t:ok\t:read\t3",
    "2\t:info\t:cas\t:timed-out",
    "3\t:fail\t:cas\t[1 2]",
    "4\t:fail\t:read\t:timed-out",
    "5\t:invoke\t:write\t1",
  ]));
  assert.deepEqual(ops, [
    {
      clientId: 0,
      input: { op: "write", value: 3 },
      output: { ok: true },
      call: 1,
      return: 6,
    },
    {
      clientId: 1,
      input: { op: "read" },
      output: { value: 3 },
      call: 2,
      return: 7,
    },
    {
      clientId: 2,
      input: { op: "cas", from: 3, to: 4 },
      output: undefined,
      call: 3,
      return: Infinity,
    },
    {
      clientId: 3,
      input: { op: "cas", from: 1, to: 2 },
      output: { ok: false },
      call: 4,
      return: 9,
    },
    {
      clientId: 5,
      input: { op: "write", value: 1 },
      output: undefined,
      call: 11,
      return: Infinity,
    },
  ]);
});

Deno.test("parsePorcupineKvLog() reads operations and maps '' to absent", () => {
  const ops = parsePorcupineKvLog([
    '{:process 0, :type :invoke, :f :get, :key "a", :value nil}',
    '{:process 1, :type :invoke, :f :append, :key "a", :value "x, y"}',
    '{:process 0, :type :ok, :f :get, :key "a", :value ""}',
    '{:process 2, :type :invoke, :f :put, :key "b", :value ""}',
    '{:process 1, :type :ok, :f :append, :key "a", :value "x, y"}',
  ].join("\n"));
  assert.deepEqual(ops, [
    {
      clientId: 0,
      input: { op: "get", key: "a" },
      output: { value: null },
      call: 1,
      return: 3,
    },
    {
      clientId: 1,
      input: { op: "append", key: "a", value: "x, y" },
      output: { ok: true },
      call: 2,
      return: 5,
    },
    {
      clientId: 2,
      input: { op: "delete", key: "b" },
      output: undefined,
      call: 4,
      return: Infinity,
    },
  ]);
});

Deno.test("parseJepsenEtcdLog() and parsePorcupineKvLog() throw HistoryFormatError with the line", async (t) => {
  const cases: {
    name: string;
    parse: () => unknown;
    line: number;
    message: RegExp;
  }[] = [
    {
      name: "garbage",
      parse: () => parseJepsenEtcdLog(jepsen(["0 :invoke :read nil"]) + "oops"),
      line: 2,
      message: /expected a Jepsen line/,
    },
    {
      name: "bad cas",
      parse: () => parseJepsenEtcdLog(jepsen(["0 :invoke :cas [1]"])),
      line: 1,
      message: /\[FROM TO\]/,
    },
    {
      name: "ok without invoke",
      parse: () => parseJepsenEtcdLog(jepsen(["0 :ok :write 1"])),
      line: 1,
      message: /completes nothing/,
    },
    {
      name: "double invoke",
      parse: () =>
        parseJepsenEtcdLog(
          jepsen(["0 :invoke :read nil", "0 :invoke :read nil"]),
        ),
      line: 2,
      message: /has not completed/,
    },
    {
      name: "kv missing field",
      parse: () =>
        parsePorcupineKvLog("\n{:process 0, :type :invoke, :f :get}"),
      line: 2,
      message: /':key'/,
    },
    {
      name: "kv not a map",
      parse: () => parsePorcupineKvLog("process 0"),
      line: 1,
      message: /key-value map/,
    },
  ];
  for (const { name, parse, line, message } of cases) {
    await t.step(name, () => {
      assert.throws(parse, (error: unknown) => {
        assert.ok(error instanceof HistoryFormatError);
        assert.equal(error.line, line);
        assert.match(error.message, new RegExp(`^Cannot parse line ${line}: `));
        assert.match(error.message, message);
        return true;
      });
    });
  }
});

Deno.test("detectHistoryFormat() tells the formats apart", () => {
  assert.equal(
    detectHistoryFormat(jepsen(["0 :invoke :read nil"])),
    "jepsen-etcd",
  );
  assert.equal(
    detectHistoryFormat(
      '\n{:process 0, :type :invoke, :f :get, :key "a", :value nil}',
    ),
    "porcupine-kv",
  );
  assert.equal(detectHistoryFormat(""), "jepsen-etcd");
  assert.equal(detectHistoryFormat("hello"), undefined);
});
