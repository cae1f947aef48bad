import assert from "node:assert/strict";
import { waitFor, waitForValue, WaitTimeoutError } from "./helpers/wait_for.ts";

Deno.test("waitFor resolves once the condition holds, sync or async", async () => {
  let tries = 0;
  await waitFor("the third try", () => ++tries >= 3, { intervalMs: 1 });
  assert.equal(tries, 3);
  await waitFor("an async condition", async () => {
    await Promise.resolve();
    return ++tries >= 5;
  }, { intervalMs: 1 });
  assert.equal(tries, 5);
});

Deno.test("waitFor times out with a typed error naming what it waited for", async () => {
  let seen = 0;
  const error = await waitFor(() => `never (seen ${seen})`, () => {
    seen++;
    return false;
  }, { timeoutMs: 30, intervalMs: 5 }).catch((e) => e);
  assert.ok(error instanceof WaitTimeoutError);
  assert.match(
    error.message,
    /^Timed out waiting for never \(seen \d+\) \(30 ms\)$/,
  );
  assert.ok(seen >= 2, `tried ${seen} times`);
});

Deno.test("waitFor fails on the first error unless told to retry, then names the last one", async () => {
  await assert.rejects(
    waitFor("a throwing probe", () => {
      throw new RangeError("boom");
    }),
    RangeError,
  );
  let tries = 0;
  await waitFor("a flaky probe", () => {
    if (++tries < 3) throw new Error("not yet");
    return true;
  }, { intervalMs: 1, retryErrors: true });
  assert.equal(tries, 3);
  const error = await waitFor("a broken probe", () => {
    throw new Error("still broken");
  }, { timeoutMs: 20, intervalMs: 5, retryErrors: true }).catch((e) => e);
  assert.ok(error instanceof WaitTimeoutError);
  assert.match(error.message, /last error: Error: still broken/);
});

Deno.test("waitForValue returns the first value that is not null", async () => {
  let n = 0;
  const value = await waitForValue(
    "a value",
    () => ++n === 4 ? `v${n}` : null,
    {
      intervalMs: 1,
    },
  );
  assert.equal(value, "v4");
  assert.equal(await waitForValue("zero", () => 0, 1000), 0);
});
