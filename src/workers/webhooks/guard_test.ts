import assert from "node:assert/strict";
import {
  AllowTargetsError,
  parseAllowTargets,
  refusedRangeClass,
  type Resolver,
  TargetBlockedError,
  TargetGuard,
  TargetResolveError,
} from "./guard.ts";

/** A resolver that answers from a table and counts its lookups. */
function tableResolver(
  table: Record<string, { A?: string[]; AAAA?: string[] }>,
): Resolver & { lookups: string[] } {
  const lookups: string[] = [];
  const resolve = (hostname: string, recordType: "A" | "AAAA") => {
    lookups.push(`${hostname} ${recordType}`);
    const entry = table[hostname];
    if (entry === undefined) {
      return Promise.reject(new Error(`no such host in the table`));
    }
    return Promise.resolve(entry[recordType] ?? []);
  };
  return Object.assign(resolve, { lookups });
}

/** A resolver that fails the test if asked: literals never reach DNS. */
const noDns: Resolver = (hostname) => {
  throw new Error(`unexpected DNS lookup of ${hostname}`);
};

async function assertBlocked(
  guard: TargetGuard,
  url: string,
  rangeClass: string,
): Promise<TargetBlockedError> {
  let caught: unknown;
  try {
    await guard.check(new URL(url));
  } catch (error) {
    caught = error;
  }
  assert.ok(
    caught instanceof TargetBlockedError,
    `expected TargetBlockedError for ${url}, got ${caught}`,
  );
  assert.equal(caught.rangeClass, rangeClass);
  assert.ok(caught.message.includes(`'${new URL(url).hostname}'`));
  assert.ok(caught.message.includes(rangeClass));
  return caught;
}

/** The refusals, and the allowance that accepts each. */
const REFUSED: [url: string, rangeClass: string, allow: string][] = [
  ["http://127.0.0.1/", "loopback", "127.0.0.1/32"],
  ["http://[::1]/", "loopback", "::1/128"],
  ["http://169.254.169.254/latest/meta-data/", "linkLocal", "169.254.0.0/16"],
  ["http://10.0.0.1/", "private", "10.0.0.0/8"],
  ["http://2130706433/", "loopback", "127.0.0.0/8"],
  ["http://[::ffff:10.0.0.1]/", "ipv4Mapped private", "10.0.0.0/8"],
  ["http://100.64.0.1/", "carrierGradeNat", "100.64.0.0/10"],
  ["http://172.16.5.4/", "private", "172.16.0.0/12"],
  ["http://192.168.1.1/", "private", "192.168.0.0/16"],
  ["http://[fc00::1]/", "uniqueLocal", "fc00::/7"],
  ["http://[fd12:3456::1]/", "uniqueLocal", "fc00::/7"],
  ["http://[fe80::1]/", "linkLocal", "fe80::/10"],
  ["http://224.0.0.1/", "multicast", "224.0.0.0/4"],
  ["http://[ff02::1]/", "multicast", "ff00::/8"],
  ["http://0.0.0.0/", "unspecified", "0.0.0.0/8"],
  ["http://[::]/", "unspecified", "::/128"],
  ["http://255.255.255.255/", "broadcast", "255.255.255.255/32"],
  ["http://240.0.0.1/", "reserved", "240.0.0.0/4"],
  ["http://[2001:db8::1]/", "reserved", "2001:db8::/32"],
  ["http://[::ffff:127.0.0.1]/", "ipv4Mapped loopback", "127.0.0.1/32"],
  [
    "http://[::ffff:169.254.169.254]/",
    "ipv4Mapped linkLocal",
    "169.254.0.0/16",
  ],
  ["http://[64:ff9b::7f00:1]/", "rfc6052", "64:ff9b::/96"],
  ["http://[2002:7f00:1::]/", "6to4", "2002::/16"],
  ["http://[::7f00:1]/", "reserved", "::/96"],
  ["http://0x7f.1/", "loopback", "127.0.0.1/32"],
];

Deno.test("TargetGuard.check() refuses special addresses and accepts them once allowed", async (t) => {
  const guard = new TargetGuard([], { resolve: noDns });
  for (const [url, rangeClass, allow] of REFUSED) {
    await t.step(url, async () => {
      await assertBlocked(guard, url, rangeClass);
      const allowed = new TargetGuard([allow], { resolve: noDns });
      const checked = await allowed.check(new URL(url));
      const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
      assert.equal(checked.family, host.includes(":") ? 6 : 4);
    });
  }
});

Deno.test("TargetGuard.check() reads the WHATWG-normalised host of http://2130706433/", async () => {
  const url = new URL("http://2130706433/");
  assert.equal(url.hostname, "127.0.0.1");
  const error = await assertBlocked(
    new TargetGuard([], { resolve: noDns }),
    url.href,
    "loopback",
  );
  assert.equal(error.address, "127.0.0.1");
  const allowed = new TargetGuard(["127.0.0.1/32"], { resolve: noDns });
  assert.deepEqual(await allowed.check(url), {
    address: "127.0.0.1",
    family: 4,
  });
});

Deno.test("TargetGuard.check() passes public literals without DNS", async () => {
  const guard = new TargetGuard([], { resolve: noDns });
  assert.deepEqual(await guard.check(new URL("http://93.184.216.34/")), {
    address: "93.184.216.34",
    family: 4,
  });
  assert.deepEqual(
    await guard.check(new URL("https://[2606:2800:220:1:248:1893:25c8:1946]/")),
    { address: "2606:2800:220:1:248:1893:25c8:1946", family: 6 },
  );
  assert.deepEqual(
    await guard.check(new URL("http://[::ffff:93.184.216.34]/")),
    { address: "::ffff:5db8:d822", family: 6 },
  );
});

Deno.test("TargetGuard.check() treats localhost and *.localhost as loopback without DNS", async (t) => {
  const guard = new TargetGuard([], { resolve: noDns });
  for (
    const host of ["localhost", "LOCALHOST", "api.localhost", "localhost."]
  ) {
    await t.step(host, async () => {
      await assertBlocked(guard, `http://${host}:8080/`, "loopback");
    });
  }
  await t.step(
    "IPv4 loopback alone is not enough: ::1 must pass too",
    async () => {
      const v4Only = new TargetGuard(["127.0.0.0/8"], { resolve: noDns });
      const error = await assertBlocked(
        v4Only,
        "http://localhost/",
        "loopback",
      );
      assert.equal(error.address, "::1");
    },
  );
  await t.step("accepted once both loopbacks are allowed", async () => {
    const allowed = new TargetGuard(["127.0.0.0/8", "::1/128"], {
      resolve: noDns,
    });
    assert.deepEqual(await allowed.check(new URL("http://localhost/")), {
      address: "127.0.0.1",
      family: 4,
    });
  });
});

Deno.test("TargetGuard.check() resolves names and refuses if any address fails", async () => {
  const resolve = tableResolver({
    "public.test": { A: ["93.184.216.34"], AAAA: ["2606:2800:220:1::1"] },
    "six.test": { AAAA: ["2606:2800:220:1::1"] },
    "mixed.test": { A: ["93.184.216.34", "10.1.2.3"] },
    "rebind.test": { A: ["93.184.216.34"], AAAA: ["::ffff:169.254.169.254"] },
    "empty.test": {},
    "bad.test": { A: ["not-an-address"] },
  });
  const guard = new TargetGuard([], { resolve });
  assert.deepEqual(await guard.check(new URL("https://public.test/h")), {
    address: "93.184.216.34",
    family: 4,
  });
  assert.deepEqual(resolve.lookups, ["public.test A", "public.test AAAA"]);
  assert.deepEqual(await guard.check(new URL("http://six.test/")), {
    address: "2606:2800:220:1::1",
    family: 6,
  });
  const mixed = await assertBlocked(guard, "http://mixed.test/", "private");
  assert.equal(mixed.address, "10.1.2.3");
  assert.ok(mixed.message.includes("'10.1.2.3'"));
  await assertBlocked(guard, "http://rebind.test/", "ipv4Mapped linkLocal");
  for (const host of ["empty.test", "bad.test", "unknown.test"]) {
    await assert.rejects(
      guard.check(new URL(`http://${host}/`)),
      (error: unknown) =>
        error instanceof TargetResolveError && error.host === host,
    );
  }
  const allowed = new TargetGuard(["10.0.0.0/8"], { resolve });
  assert.equal(
    (await allowed.check(new URL("http://mixed.test/"))).address,
    "93.184.216.34",
  );
});

Deno.test("TargetGuard.check() never names the path or query in a refusal", async () => {
  const guard = new TargetGuard([], { resolve: noDns });
  const error = await assertBlocked(
    guard,
    "http://10.0.0.1/hook?token=hunter2",
    "private",
  );
  assert.ok(!error.message.includes("hunter2"));
  assert.ok(!error.message.includes("/hook"));
});

Deno.test("TargetGuard.check() refuses other schemes", async () => {
  const guard = new TargetGuard([], { resolve: noDns });
  await assert.rejects(guard.check(new URL("ftp://93.184.216.34/")), TypeError);
});

Deno.test("parseAllowTargets() reads comma-separated CIDRs", () => {
  assert.deepEqual(parseAllowTargets("10.0.0.0/8,::1/128"), [
    "10.0.0.0/8",
    "::1/128",
  ]);
  assert.deepEqual(parseAllowTargets(" 127.0.0.1/32 , fc00::/7 ,"), [
    "127.0.0.1/32",
    "fc00::/7",
  ]);
  assert.deepEqual(parseAllowTargets(""), []);
});

Deno.test("parseAllowTargets() refuses anything but a CIDR", async (t) => {
  for (
    const bad of [
      "10.0.0.1",
      "10.0.0.0/33",
      "::1/129",
      "10/8",
      "0x0a.0.0.0/8",
      "example.com/24",
      "fe80::1%eth0/64",
      "10.0.0.0/-1",
      "10.0.0.0/",
    ]
  ) {
    await t.step(bad, () => {
      assert.throws(
        () => parseAllowTargets(`127.0.0.1/32,${bad}`),
        (error: unknown) =>
          error instanceof AllowTargetsError &&
          error.message.includes(`'${bad}'`),
      );
    });
  }
  await t.step("more than 64 entries", () => {
    const many = Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`);
    assert.throws(() => parseAllowTargets(many.join(",")), AllowTargetsError);
  });
  await t.step("the constructor checks too", () => {
    assert.throws(() => new TargetGuard(["nope"]), AllowTargetsError);
  });
});

Deno.test("refusedRangeClass() is null only for public unicast", () => {
  assert.equal(refusedRangeClass("8.8.8.8"), null);
  assert.equal(refusedRangeClass("2001:4860:4860::8888"), null);
  assert.equal(refusedRangeClass("::ffff:8.8.8.8"), null);
  assert.equal(refusedRangeClass("127.0.0.2"), "loopback");
  assert.equal(
    refusedRangeClass("::ffff:100.64.0.1"),
    "ipv4Mapped carrierGradeNat",
  );
  assert.throws(() => refusedRangeClass("localhost"), TypeError);
});
