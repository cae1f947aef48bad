/**
 * The conformance suite counts a listed case's failure as its expected
 * difference only when it fails in the listed way; any other failure of that
 * case (a new bug) stays a failure.
 */
import assert from "node:assert/strict";
import {
  classify,
  EXPECTED_DIFFERENCES,
} from "./helpers/kv_conformance_suite.mjs";

const npm = { client: "npm-deno-kv", runtime: "node v20.19.2" };

Deno.test("classify() matches the specific expected difference", async (t) => {
  await t.step("the listed failure is the expected difference", () => {
    const result = classify(
      "fail",
      npm,
      "lke",
      "empty key: expected an error containing 'key cannot be empty', received 'Key cannot be empty'",
    );
    assert.equal(result.status, "expected-difference");
    assert.equal(result.difference, "deno-kv-npm-empty-key-message");
  });
  await t.step("another failure of a listed case is a failure", () => {
    const result = classify(
      "fail",
      npm,
      "lke",
      "empty key: expected an error containing 'key cannot be empty', received 'internal error'",
    );
    assert.equal(result.status, "fail");
    assert.match(result.detail, /fails differently/);
  });
  await t.step("a listed case that passes is reported fixed", () => {
    assert.equal(classify("pass", npm, "lke", "").status, "difference-fixed");
  });
  await t.step("a case of another client is not excused", () => {
    const result = classify(
      "fail",
      { client: "deno-remote", runtime: "deno 2.9.6" },
      "lke",
      "received 'Key cannot be empty'",
    );
    assert.equal(result.status, "fail");
  });
  await t.step("every listed difference has a pattern that compiles", () => {
    for (const difference of EXPECTED_DIFFERENCES) {
      assert.ok(new RegExp(difference.failurePattern), difference.name);
    }
  });
});
