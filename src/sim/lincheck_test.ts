import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkOperations,
  type KvInput,
  kvModel,
  type KvOutput,
  type Model,
  type Operation,
  type RegisterInput,
  registerModel,
  type RegisterOutput,
} from "./lincheck.ts";
import { parseJepsenEtcdLog } from "./history_formats.ts";

type RegisterOp = Operation<RegisterInput, RegisterOutput>;
type KvOp = Operation<KvInput, KvOutput>;

/** An operation; `returned` omitted = outcome unknown (never returned). */
function op<I, O>(
  clientId: number,
  input: I,
  output: O | undefined,
  call: number,
  returned = Infinity,
): Operation<I, O> {
  return { clientId, input, output, call, return: returned };
}

const read = (
  value: number | null,
  call: number,
  returned: number,
  clientId = 0,
): RegisterOp => op(clientId, { op: "read" }, { value }, call, returned);
const write = (
  value: number,
  call: number,
  returned?: number,
  clientId = 1,
): RegisterOp =>
  op(
    clientId,
    { op: "write", value },
    returned === undefined ? undefined : { ok: true },
    call,
    returned,
  );
const cas = (
  from: number,
  to: number,
  ok: boolean | undefined,
  call: number,
  returned?: number,
): RegisterOp =>
  op(
    2,
    { op: "cas", from, to },
    ok === undefined ? undefined : { ok },
    call,
    returned,
  );

Deno.test("checkOperations() decides hand-written register histories", async (t) => {
  const cases: { name: string; ops: RegisterOp[]; linearizable: boolean }[] = [
    { name: "empty history", ops: [], linearizable: true },
    {
      name: "write then read",
      ops: [write(1, 0, 1), read(1, 2, 3)],
      linearizable: true,
    },
    {
      name: "stale read after write",
      ops: [write(1, 0, 1), read(null, 2, 3)],
      linearizable: false,
    },
    {
      name: "concurrent read sees new",
      ops: [write(1, 0, 5), read(1, 1, 2)],
      linearizable: true,
    },
    {
      name: "concurrent read sees old",
      ops: [write(1, 0, 5), read(null, 1, 2)],
      linearizable: true,
    },
    {
      name: "new then old read inversion",
      ops: [write(1, 0, 10), read(1, 1, 2), read(null, 3, 4, 3)],
      linearizable: false,
    },
    {
      name: "read of a never written value",
      ops: [read(7, 0, 1)],
      linearizable: false,
    },
    {
      name: "unknown write seen",
      ops: [write(1, 0), read(1, 5, 6)],
      linearizable: true,
    },
    {
      name: "unknown write not seen",
      ops: [write(1, 0), read(null, 5, 6)],
      linearizable: true,
    },
    {
      name: "unknown write cannot act before its call",
      ops: [read(5, 0, 1), write(5, 2)],
      linearizable: false,
    },
    {
      name: "unknown write seen then unseen",
      ops: [write(1, 0), read(1, 5, 6), read(null, 7, 8)],
      linearizable: false,
    },
    {
      name: "cas ok when equal",
      ops: [write(1, 0, 1), cas(1, 2, true, 2, 3), read(2, 4, 5)],
      linearizable: true,
    },
    {
      name: "cas ok when different",
      ops: [write(1, 0, 1), cas(3, 2, true, 2, 3)],
      linearizable: false,
    },
    {
      name: "cas fail when equal",
      ops: [write(1, 0, 1), cas(1, 2, false, 2, 3)],
      linearizable: false,
    },
    {
      name: "cas fail when different",
      ops: [write(1, 0, 1), cas(3, 2, false, 2, 3), read(1, 4, 5)],
      linearizable: true,
    },
    {
      name: "unknown cas applied",
      ops: [write(1, 0, 1), cas(1, 2, undefined, 2), read(2, 5, 6)],
      linearizable: true,
    },
    {
      name: "unknown cas that cannot apply",
      ops: [write(1, 0, 1), cas(3, 2, undefined, 2), read(2, 5, 6)],
      linearizable: false,
    },
    {
      name:
        "unknown output with a finite return is dropped or placed before it",
      ops: [
        op<RegisterInput, RegisterOutput>(
          1,
          { op: "write", value: 4 },
          undefined,
          0,
          2,
        ),
        read(4, 3, 4),
        read(4, 5, 6),
      ],
      linearizable: true,
    },
    {
      name: "unknown output with a finite return cannot act after it",
      ops: [
        op<RegisterInput, RegisterOutput>(
          1,
          { op: "write", value: 4 },
          undefined,
          0,
          2,
        ),
        read(null, 3, 4),
        read(4, 5, 6),
      ],
      linearizable: false,
    },
  ];
  for (const { name, ops, linearizable } of cases) {
    await t.step(name, () => {
      const result = checkOperations(registerModel, ops);
      assert.equal(
        result.verdict,
        linearizable ? "linearizable" : "not linearizable",
      );
      assert.equal(result.detail !== undefined, !linearizable);
    });
  }
});

const kv = (
  input: KvInput,
  output: KvOutput | undefined,
  call: number,
  returned?: number,
  clientId = 0,
): KvOp => op(clientId, input, output, call, returned);

Deno.test("checkOperations() decides hand-written kv histories", async (t) => {
  const cases: { name: string; ops: KvOp[]; linearizable: boolean }[] = [
    {
      name: "missing key reads null",
      ops: [kv({ op: "get", key: "a" }, { value: null }, 0, 1)],
      linearizable: true,
    },
    {
      name: "append to missing key",
      ops: [
        kv({ op: "append", key: "a", value: "x" }, { ok: true }, 0, 1),
        kv({ op: "append", key: "a", value: "y" }, { ok: true }, 2, 3),
        kv({ op: "get", key: "a" }, { value: "xy" }, 4, 5),
      ],
      linearizable: true,
    },
    {
      name: "keys are independent",
      ops: [
        kv({ op: "put", key: "a", value: "1" }, { ok: true }, 0, 1),
        kv({ op: "get", key: "b" }, { value: null }, 2, 3),
        kv({ op: "get", key: "a" }, { value: "1" }, 4, 5),
      ],
      linearizable: true,
    },
    {
      name: "delete then get",
      ops: [
        kv({ op: "put", key: "a", value: "1" }, { ok: true }, 0, 1),
        kv({ op: "delete", key: "a" }, { ok: true }, 2, 3),
        kv({ op: "get", key: "a" }, { value: "1" }, 4, 5),
      ],
      linearizable: false,
    },
    {
      name: "cas on absent key",
      ops: [
        kv(
          { op: "cas", key: "a", expected: null, value: "1" },
          { ok: true },
          0,
          1,
        ),
        kv(
          { op: "cas", key: "a", expected: null, value: "2" },
          { ok: false },
          2,
          3,
        ),
        kv({ op: "get", key: "a" }, { value: "1" }, 4, 5),
      ],
      linearizable: true,
    },
    {
      name: "two cas from absent both succeed",
      ops: [
        kv(
          { op: "cas", key: "a", expected: null, value: "1" },
          { ok: true },
          0,
          3,
          1,
        ),
        kv(
          { op: "cas", key: "a", expected: null, value: "2" },
          { ok: true },
          1,
          4,
          2,
        ),
      ],
      linearizable: false,
    },
    {
      name: "unknown put on another key does not matter",
      ops: [
        kv({ op: "put", key: "b", value: "9" }, undefined, 0),
        kv({ op: "put", key: "a", value: "1" }, { ok: true }, 0, 1),
        kv({ op: "get", key: "a" }, { value: "2" }, 2, 3),
      ],
      linearizable: false,
    },
  ];
  for (const { name, ops, linearizable } of cases) {
    await t.step(name, () => {
      const result = checkOperations(kvModel, ops);
      assert.equal(
        result.verdict,
        linearizable ? "linearizable" : "not linearizable",
      );
      if (!linearizable) assert.equal(result.detail?.partition, 'key "a"');
    });
  }
});

Deno.test("checkOperations() reports the operations of the failing partition", () => {
  const result = checkOperations(registerModel, [
    write(1, 0, 1),
    read(null, 2, 3),
  ]);
  assert.deepEqual(result, {
    verdict: "not linearizable",
    detail: {
      partition: "all operations",
      operations: [
        "client 1 [0, 1] write(1) -> ok",
        "client 0 [2, 3] read() -> nil",
      ],
    },
  });
});

Deno.test("checkOperations() stays fast with many unknown-outcome writes", () => {
  // 300 timed-out writes of 5 values overlapping everything, and reads that
  // need them in a particular order.
  const ops: RegisterOp[] = [];
  for (let index = 0; index < 300; index++) {
    ops.push(write(index % 5, index, undefined, 10 + index));
  }
  [4, 2, 0, 3, 1, 1, 4].forEach((value, index) =>
    ops.push(read(value, 400 + 2 * index, 401 + 2 * index))
  );
  const started = performance.now();
  assert.equal(
    checkOperations(registerModel, ops, { timeoutMs: 30_000 }).verdict,
    "linearizable",
  );
  const distinct: RegisterOp[] = [];
  for (let index = 0; index < 60; index++) {
    distinct.push(write(index, index, undefined, 10 + index));
  }
  distinct.push(read(59, 100, 101), read(0, 102, 103), read(30, 104, 105));
  assert.equal(
    checkOperations(registerModel, distinct, { timeoutMs: 30_000 }).verdict,
    "linearizable",
  );
  assert.ok(performance.now() - started < 30_000);
});

Deno.test("checkOperations() returns undecided when the timeout runs out", async (t) => {
  const ops = [write(1, 0, 1), read(1, 2, 3)];
  await t.step("timeout of 0", () => {
    assert.deepEqual(checkOperations(registerModel, ops, { timeoutMs: 0 }), {
      verdict: "undecided",
    });
  });
  await t.step("clock that jumps past the deadline mid-search", () => {
    let calls = 0;
    const now = () => (calls++ < 2 ? 0 : 1_000);
    const slow: KvOp[] = [];
    // Distinct unknown appends and an impossible get: an exponential search.
    for (let index = 0; index < 40; index++) {
      slow.push(
        kv({ op: "append", key: "k", value: `<${index}>` }, undefined, index),
      );
    }
    slow.push(kv({ op: "get", key: "k" }, { value: "none" }, 100, 101));
    assert.equal(
      checkOperations(kvModel, slow, { timeoutMs: 10, now }).verdict,
      "undecided",
    );
  });
  await t.step("empty history needs no time", () => {
    assert.equal(
      checkOperations(registerModel, [], { timeoutMs: 0 }).verdict,
      "linearizable",
    );
  });
});

Deno.test("checkOperations() finds a bad partition next to a slow one", () => {
  const ops: KvOp[] = [];
  // Key "slow": 40 distinct unknown appends and an impossible get: every
  // order of every subset is a distinct state, so its search is exponential.
  for (let index = 0; index < 40; index++) {
    ops.push(
      kv({ op: "append", key: "slow", value: `<${index}>` }, undefined, index),
    );
  }
  ops.push(kv({ op: "get", key: "slow" }, { value: "none" }, 100, 101));
  ops.push(kv({ op: "put", key: "bad", value: "1" }, { ok: true }, 0, 1));
  ops.push(kv({ op: "get", key: "bad" }, { value: "2" }, 2, 3));
  const result = checkOperations(kvModel, ops, { timeoutMs: 20_000 });
  assert.equal(result.verdict, "not linearizable");
  assert.equal(result.detail?.partition, 'key "bad"');
});

Deno.test("checkOperations() rejects malformed operations", async (t) => {
  const cases: {
    name: string;
    ops: RegisterOp[];
    timeoutMs?: number;
    message: RegExp;
  }[] = [
    {
      name: "return before call",
      ops: [read(1, 5, 4)],
      message: /'return' must be at least 'call'/,
    },
    {
      name: "infinite call",
      ops: [read(1, Infinity, Infinity)],
      message: /'call' must be finite/,
    },
    {
      name: "negative timeout",
      ops: [],
      timeoutMs: -1,
      message: /'timeoutMs' must be at least 0/,
    },
  ];
  for (const { name, ops, timeoutMs, message } of cases) {
    await t.step(name, () => {
      assert.throws(() => checkOperations(registerModel, ops, { timeoutMs }), {
        name: "RangeError",
        message,
      });
    });
  }
});

/** Applies random inputs one after another (non-overlapping intervals). */
function sequentialHistory<S, I, O>(
  model: Model<S, I, O>,
  inputs: readonly I[],
  outputOf: (state: S, input: I) => O,
): Operation<I, O>[] {
  let state = model.init();
  return inputs.map((input, index) => {
    const output = outputOf(state, input);
    const next = model.step(state, input, output);
    assert.ok(next !== undefined, "The model must accept its own output");
    state = next;
    return op(index % 3, input, output, 2 * index, 2 * index + 1);
  });
}

const kvInputArbitrary: fc.Arbitrary<KvInput> = fc.oneof(
  fc.record({
    op: fc.constant("get" as const),
    key: fc.constantFrom("a", "b"),
  }),
  fc.record({
    op: fc.constant("put" as const),
    key: fc.constantFrom("a", "b"),
    value: fc.constantFrom("1", "2"),
  }),
  fc.record({
    op: fc.constant("append" as const),
    key: fc.constantFrom("a", "b"),
    value: fc.constantFrom("x", "y"),
  }),
  fc.record({
    op: fc.constant("cas" as const),
    key: fc.constantFrom("a", "b"),
    expected: fc.constantFrom(null, "1", "2"),
    value: fc.constantFrom("1", "2"),
  }),
  fc.record({
    op: fc.constant("delete" as const),
    key: fc.constantFrom("a", "b"),
  }),
);

function kvOutputOf(
  state: ReadonlyMap<string, string>,
  input: KvInput,
): KvOutput {
  const current = state.get(input.key) ?? null;
  if (input.op === "get") return { value: current };
  if (input.op === "cas") return { ok: current === input.expected };
  return { ok: true };
}

Deno.test("checkOperations() accepts every sequential kv history", () => {
  fc.assert(
    fc.property(fc.array(kvInputArbitrary, { maxLength: 40 }), (inputs) => {
      const ops = sequentialHistory(kvModel, inputs, kvOutputOf);
      assert.equal(checkOperations(kvModel, ops).verdict, "linearizable");
    }),
  );
});

Deno.test("checkOperations() rejects a sequential kv history with a corrupted get", () => {
  fc.assert(
    fc.property(
      fc.array(kvInputArbitrary, { maxLength: 40 }),
      fc.nat(),
      (inputs, pick) => {
        const ops = sequentialHistory(kvModel, inputs, kvOutputOf);
        const gets = ops.flatMap((candidate, index) =>
          candidate.input.op === "get" ? [index] : []
        );
        fc.pre(gets.length > 0);
        const index = gets[pick % gets.length]!;
        const original = ops[index]!;
        const seen = (original.output as { value: string | null }).value;
        // No value ever written contains "corrupt", so no order explains it.
        ops[index] = { ...original, output: { value: `${seen ?? ""}corrupt` } };
        assert.equal(checkOperations(kvModel, ops).verdict, "not linearizable");
      },
    ),
  );
});

const registerInputArbitrary: fc.Arbitrary<RegisterInput> = fc.oneof(
  fc.constant({ op: "read" as const }),
  fc.record({
    op: fc.constant("write" as const),
    value: fc.integer({ min: 0, max: 3 }),
  }),
  fc.record({
    op: fc.constant("cas" as const),
    from: fc.integer({ min: 0, max: 3 }),
    to: fc.integer({ min: 0, max: 3 }),
  }),
);

Deno.test("checkOperations() accepts sequential register histories and rejects a corrupted read", () => {
  const outputOf = (
    state: number | null,
    input: RegisterInput,
  ): RegisterOutput =>
    input.op === "read"
      ? { value: state }
      : input.op === "write"
      ? { ok: true }
      : { ok: state === input.from };
  fc.assert(
    fc.property(
      fc.array(registerInputArbitrary, { minLength: 1, maxLength: 40 }),
      fc.nat(),
      (inputs, pick) => {
        const ops = sequentialHistory(registerModel, [...inputs, {
          op: "read",
        }], outputOf);
        assert.equal(
          checkOperations(registerModel, ops).verdict,
          "linearizable",
        );
        const reads = ops.flatMap((candidate, index) =>
          candidate.input.op === "read" ? [index] : []
        );
        const index = reads[pick % reads.length]!;
        ops[index] = { ...ops[index]!, output: { value: 99 } };
        assert.equal(
          checkOperations(registerModel, ops).verdict,
          "not linearizable",
        );
      },
    ),
  );
});

// A failed compare-and-set is an observation: the value differed from the
// expected one at its linearization point. A history where the register holds
// exactly the expected value for the whole interval of a cas answered "fail",
// with nothing concurrent, is not linearizable (the checker accepted these
// while `:fail :cas` was dropped as "did not happen").
Deno.test("checkOperations() treats a failed cas as an observation", async (t) => {
  await t.step("generated register histories", () => {
    fc.assert(
      fc.property(
        fc.array(registerInputArbitrary, { maxLength: 30 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 3 }),
        (prefix, value, to) => {
          const outputOf = (
            state: number | null,
            input: RegisterInput,
          ): RegisterOutput =>
            input.op === "read"
              ? { value: state }
              : input.op === "write"
              ? { ok: true }
              : { ok: state === input.from };
          const inputs: RegisterInput[] = [...prefix, {
            op: "write",
            value,
          }];
          const ops = sequentialHistory(registerModel, inputs, outputOf);
          const at = 2 * ops.length;
          const failed = op<RegisterInput, RegisterOutput>(
            0,
            { op: "cas", from: value, to },
            { ok: false },
            at,
            at + 1,
          );
          assert.equal(
            checkOperations(registerModel, [...ops, failed]).verdict,
            "not linearizable",
          );
          // The same cas answered ok is fine, and so is a failed cas whose
          // expected value differs from the register's.
          assert.equal(
            checkOperations(registerModel, [...ops, {
              ...failed,
              output: { ok: true },
            }]).verdict,
            "linearizable",
          );
          assert.equal(
            checkOperations(registerModel, [...ops, {
              ...failed,
              input: { op: "cas", from: value + 1, to },
            }]).verdict,
            "linearizable",
          );
        },
      ),
    );
  });

  await t.step("generated kv histories (a check-failed atomic)", () => {
    fc.assert(
      fc.property(
        fc.array(kvInputArbitrary, { maxLength: 30 }),
        fc.constantFrom("a", "b"),
        fc.constantFrom("1", "2"),
        (prefix, key, value) => {
          const ops = sequentialHistory(kvModel, [...prefix, {
            op: "put",
            key,
            value,
          }], kvOutputOf);
          const at = 2 * ops.length;
          const failed = op<KvInput, KvOutput>(
            1,
            { op: "cas", key, expected: value, value: "3" },
            { ok: false },
            at,
            at + 1,
          );
          assert.equal(
            checkOperations(kvModel, [...ops, failed]).verdict,
            "not linearizable",
          );
        },
      ),
    );
  });

  await t.step("a Jepsen log through the parser", () => {
    const log = [
      "0 :invoke :write 1",
      "0 :ok :write 1",
      "1 :invoke :cas [1 2]",
      "1 :fail :cas [1 2]",
    ].map((line) => `INFO  jepsen.util - ${line}`).join("\n");
    assert.equal(
      checkOperations(registerModel, parseJepsenEtcdLog(log)).verdict,
      "not linearizable",
    );
  });
});
