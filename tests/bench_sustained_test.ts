/**
 * The sustained run's and the memory benchmark's pure parts: options,
 * error classes, the per-second record, the recovery arithmetic and the
 * plot's SVG (the runs themselves start real clusters and are not tests).
 *
 * @module
 */
import { assert } from "../src/base/assert.ts";
import { deepEqual, equal, match, throws } from "node:assert/strict";
import { TimeoutError, UnavailableError } from "../mod.ts";
import type { KvDriver } from "../bench/_load.ts";
import { niceMax, sustainedSvg } from "../bench/_plot.ts";
import { parseSustainedOptions } from "../bench/sustained.ts";
import { memoryTable, parseMemoryOptions } from "../bench/memory.ts";
import {
  recoverySeconds,
  summarizeErrors,
} from "../bench/_sustained_report.ts";
import {
  errorKind,
  OUTCOME_UNKNOWN,
  type SecondRecord,
  TimelineDriver,
} from "../bench/_timeline.ts";

function second(t: number, ops: number, errors = 0): SecondRecord {
  return { t, gets: ops, puts: 0, outcomeUnknown: errors, otherErrors: 0 };
}

Deno.test("parseSustainedOptions() has the issue's defaults and refuses bad values", async (t) => {
  await t.step("defaults: 600 s, a kill every 60 s, 64 clients", () => {
    const options = parseSustainedOptions([]);
    equal(options.durationS, 600);
    equal(options.killEveryS, 60);
    equal(options.restartAfterS, 3);
    equal(options.clients, 64);
    equal(options.valueBytes, 256);
  });
  for (
    const args of [
      ["--duration", "0"],
      ["--duration", "90", "--kill-every", "91"],
      ["--kill-every", "10", "--restart-after", "11"],
      ["--clients", "1.5"],
      ["--unknown"],
    ]
  ) {
    await t.step(`refuses ${args.join(" ")}`, () => {
      throws(() => parseSustainedOptions(args));
    });
  }
});

Deno.test("parseMemoryOptions() defaults to 1,000,000 puts measured every 100,000", () => {
  const options = parseMemoryOptions([]);
  equal(options.puts, 1_000_000);
  equal(options.every, 100_000);
  throws(() => parseMemoryOptions(["--puts", "10", "--every", "11"]));
  throws(() => parseMemoryOptions(["--puts", "-1"]));
});

Deno.test("errorKind() sets outcome-unknown writes apart from every other error", () => {
  equal(errorKind(new TimeoutError("no answer", true)), OUTCOME_UNKNOWN);
  equal(
    errorKind(new TimeoutError("no answer", false)),
    "TimeoutError/outcomeUnknown",
  );
  equal(
    errorKind(new UnavailableError("unavailable", "no leader")),
    "UnavailableError/unavailable",
  );
  equal(errorKind(new RangeError("x")), "RangeError");
});

Deno.test("TimelineDriver counts operations and classified errors per second", async () => {
  let calls = 0;
  const inner: KvDriver = {
    put: () => {
      calls++;
      return calls === 2
        ? Promise.reject(new TimeoutError("lost", true))
        : Promise.resolve();
    },
    get: (key) =>
      key === "boom"
        ? Promise.reject(new UnavailableError("unavailable", "down"))
        : Promise.resolve(key !== "absent"),
    cas: () => Promise.resolve(true),
    close: () => Promise.resolve(),
  };
  const timeline = new TimelineDriver(inner);
  const value = new Uint8Array(1);
  await timeline.put("a", value);
  await timeline.put("b", value).catch(() => {});
  equal(await timeline.get("a"), true);
  equal(await timeline.get("absent"), false);
  await timeline.get("boom").catch(() => {});
  const seconds = timeline.seconds();
  assert(seconds.length >= 1, "one second at least was recorded");
  const totals = summarizeErrors(seconds, 1000);
  deepEqual(
    [totals.puts, totals.gets, totals.outcomeUnknown, totals.otherErrors],
    [1, 1, 1, 2],
  );
  deepEqual(
    timeline.errorClasses().map((c) => `${c.operation} ${c.kind} ${c.count}`)
      .sort(),
    [
      "get Error 1",
      "get UnavailableError/unavailable 1",
      `put ${OUTCOME_UNKNOWN} 1`,
    ],
  );
});

Deno.test("recoverySeconds() counts the seconds until half the throughput before the kill", () => {
  const seconds = [
    ...Array.from({ length: 10 }, (_, t) => second(t, 100)),
    second(10, 60),
    second(11, 0, 3),
    second(12, 20),
    second(13, 70),
    second(14, 100),
  ];
  equal(recoverySeconds(seconds, 10.4), 3);
  equal(recoverySeconds(seconds.slice(0, 13), 10.4), null);
  equal(recoverySeconds(seconds, 0.2), null);
});

Deno.test("niceMax() rounds up to 1, 2 or 5 times a power of ten", () => {
  deepEqual([0, 0.3, 1, 3, 7, 12, 4500].map(niceMax), [
    1,
    0.5,
    1,
    5,
    10,
    20,
    5000,
  ]);
});

Deno.test("sustainedSvg() draws the throughput, the errors and every kill", () => {
  const svg = sustainedSvg({
    title: "t <&>",
    subtitle: "s",
    seconds: [second(0, 10), second(1, 0, 2), second(2, 12)],
    marks: [
      { t: 1.2, label: "kill n1", kind: "kill" },
      { t: 2.5, label: "restart n1", kind: "restart" },
    ],
  });
  match(svg, /^<svg /);
  match(svg, /t &lt;&amp;&gt;/);
  match(svg, />kill n1</);
  equal(svg.match(/<polyline /g)?.length, 2);
  equal(svg.match(/fill="#f0a020"\/>/g)?.length, 2, "one error bar + legend");
});

Deno.test("memoryTable() prints one row per point and node", () => {
  const node = {
    node: "n1",
    pid: 1,
    rssBytes: 100 * 1024 * 1024,
    rssAnonBytes: 0,
    rssFileBytes: 0,
    rssPeakBytes: 0,
    rssAfterGcBytes: 0,
    heapUsedBytes: 0,
    heapTotalBytes: 0,
    externalBytes: 0,
    role: "leader",
    applied: 5,
    lastIndex: 5,
    snapshotIndex: 2,
    snapshotBytes: null,
    dataDirBytes: 0,
  };
  const table = memoryTable([
    { label: "start", puts: 0, putsPerSecond: null, errors: 0, nodes: [node] },
    { label: "end", puts: 9, putsPerSecond: 3, errors: 0, nodes: [node] },
  ]);
  const lines = table.split("\n");
  equal(lines.length, 4);
  match(lines[3]!, /\| end +\| 9 +\| 3 +\| n1 \(leader\) \| 100\.0 /);
});
