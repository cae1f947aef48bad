/**
 * The SSRF guard of the webhook workers (issue 17, "Webhook delivery"):
 * before each attempt the worker resolves the target's host and refuses
 * it unless every address it resolves to is a public unicast address, or
 * lies inside a range the operator allowed (`--allow-targets CIDR,…`, env
 * `ASPEN_HOOK_ALLOW_TARGETS`: an operator setting, never an API).
 *
 * Refused without an allowance: loopback, RFC 1918 private, unique-local
 * (fc00::/7), link-local (169.254/16 with the 169.254.169.254 metadata
 * address, fe80::/10), CGNAT (100.64/10), multicast, unspecified,
 * broadcast, every reserved or special-purpose range `ipaddr.js` knows
 * (NAT64, 6to4, Teredo, documentation, benchmarking…), IPv6 outside the
 * global unicast 2000::/3, and the IPv4-mapped (::ffff:a.b.c.d) forms of
 * all of these. `localhost` and `*.localhost` are loopback without asking
 * DNS (RFC 6761). IP literals are read after the WHATWG URL parser's
 * normalisation (`http://2130706433/` has the host `127.0.0.1`).
 *
 * Plain-http deliveries then connect to the checked address
 * ({@link ./deliver.ts}), so a DNS answer that changes between the check
 * and the connection cannot move them.
 *
 * @module
 */
import ipaddr from "ipaddr.js";

/** An IPv4 or IPv6 address as `ipaddr.js` parses it. */
type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/** The environment variable of the allow list (the flag is `--allow-targets`). */
export const ALLOW_TARGETS_ENV = "ASPEN_HOOK_ALLOW_TARGETS";
/** Most CIDRs of one allow list. */
export const ALLOW_TARGETS_MAX = 64;
/** Most addresses one host may resolve to (A and AAAA together). */
export const RESOLVED_ADDRESSES_MAX = 64;

/** The address a target was checked at: plain http connects to it. */
export interface CheckedAddress {
  /** The address, in its canonical text form (IPv6 without brackets). */
  readonly address: string;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

/**
 * Looks a name up in DNS: the addresses of its `A` or `AAAA` records, an
 * empty list when it has none of that type.
 */
export type Resolver = (
  hostname: string,
  recordType: "A" | "AAAA",
  signal?: AbortSignal,
) => Promise<readonly string[]>;

/** Options of {@linkcode TargetGuard}. */
export interface TargetGuardOptions {
  /** DNS lookups; default {@linkcode resolveWithDeno} (`Deno.resolveDns`). */
  readonly resolve?: Resolver;
}

/**
 * The guard refused a target: one of the addresses its host resolves to is
 * in a refused range. The message names the host, the address and the
 * range class, never the URL's path or query (they may carry tokens).
 */
export class TargetBlockedError extends Error {
  override name = "TargetBlockedError";
  /** The host as the URL names it. */
  readonly host: string;
  /** The refused address. */
  readonly address: string;
  /** The `ipaddr.js` range name (`loopback`, `private`, `linkLocal`…), `ipv4Mapped ` before it for a mapped address. */
  readonly rangeClass: string;

  constructor(host: string, address: string, rangeClass: string) {
    super(
      host === address
        ? `Cannot deliver to '${host}' as it is a ${rangeClass} address`
        : `Cannot deliver to '${host}' as it resolves to '${address}', a ${rangeClass} address`,
    );
    this.host = host;
    this.address = address;
    this.rangeClass = rangeClass;
  }
}

/**
 * The target's host could not be resolved (no records, a DNS failure or
 * timeout): a connection error, retried like one, not a refusal.
 */
export class TargetResolveError extends Error {
  override name = "TargetResolveError";
  /** The host as the URL names it. */
  readonly host: string;

  constructor(host: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.host = host;
  }
}

/** An allow list (`--allow-targets`, `ASPEN_HOOK_ALLOW_TARGETS`) is malformed. */
export class AllowTargetsError extends Error {
  override name = "AllowTargetsError";
}

/**
 * Parses the operator's allow list: comma-separated CIDRs (`10.0.0.0/8`,
 * `::1/128`), spaces around them ignored, empty for none.
 *
 * @param text The setting's value.
 * @returns The CIDRs, as given.
 * @throws {AllowTargetsError} For an entry that is not a CIDR (a bare
 *   address too: write `/32` or `/128`), or more than
 *   {@linkcode ALLOW_TARGETS_MAX} entries.
 *
 * @example
 * ```ts
 * import { parseAllowTargets } from "./guard.ts";
 * console.assert(parseAllowTargets("10.0.0.0/8, ::1/128").length === 2);
 * ```
 */
export function parseAllowTargets(text: string): readonly string[] {
  const entries = text.split(",").map((entry) => entry.trim()).filter((
    entry,
  ) => entry !== "");
  if (entries.length > ALLOW_TARGETS_MAX) {
    throw new AllowTargetsError(
      `Cannot use allowed targets as there are too many: ${entries.length} > ${ALLOW_TARGETS_MAX}`,
    );
  }
  for (const entry of entries) parseCidr(entry);
  return Object.freeze(entries);
}

/** Parses one CIDR strictly: four-part decimal IPv4 or IPv6 without a zone. */
function parseCidr(text: string): [IpAddress, number] {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const prefix = slash < 0 ? "" : text.slice(slash + 1);
  const wellFormed = /^\d{1,3}$/.test(prefix) &&
    (ipaddr.IPv4.isValidFourPartDecimal(address) ||
      (address.includes(":") && !address.includes("%") &&
        ipaddr.IPv6.isValid(address)));
  if (wellFormed) {
    try {
      return ipaddr.parseCIDR(text);
    } catch {
      // The prefix is too long for the family: refused below.
    }
  }
  throw new AllowTargetsError(
    `Cannot use allowed target '${
      text.slice(0, 64)
    }' as it is not a CIDR (a.b.c.d/N or an IPv6 address/N)`,
  );
}

/** IPv6 global unicast; every other IPv6 block is special or unassigned. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");

/**
 * Why an address is refused without an allowance: its range class, or null
 * for a public unicast address.
 *
 * @param address An IPv4 or IPv6 address (no brackets).
 * @returns The range class (`loopback`, `private`, `ipv4Mapped loopback`…) or null.
 * @throws {TypeError} When the text is not an IP address.
 */
export function refusedRangeClass(address: string): string | null {
  return refusedClassOf(parseAddress(address));
}

function refusedClassOf(address: IpAddress): string | null {
  if (address.kind() === "ipv4") {
    const range = address.range();
    return range === "unicast" ? null : range;
  }
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) {
    const inner = refusedClassOf(v6.toIPv4Address());
    return inner === null ? null : `ipv4Mapped ${inner}`;
  }
  const range = v6.range();
  if (range !== "unicast") return range;
  return v6.match(GLOBAL_UNICAST_V6) ? null : "reserved";
}

/** Parses an address literal; IPv4 only in the four-part decimal form. */
function parseAddress(text: string): IpAddress {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (text.includes(":") && ipaddr.IPv6.isValid(text)) {
    return ipaddr.IPv6.parse(text);
  }
  throw new TypeError(
    `Cannot read address '${text.slice(0, 64)}' as it is not an IP address`,
  );
}

/**
 * Checks webhook targets against the refused ranges and the operator's
 * allow list.
 *
 * @example
 * ```ts
 * import { TargetGuard } from "./guard.ts";
 * const guard = new TargetGuard(["127.0.0.1/32"]);
 * const checked = await guard.check(new URL("http://127.0.0.1:8080/hook"));
 * console.assert(checked.address === "127.0.0.1" && checked.family === 4);
 * ```
 */
export class TargetGuard {
  readonly #allow: readonly [IpAddress, number][];
  readonly #resolve: Resolver;

  /**
   * @param allow CIDRs inside which any address is accepted (see
   *   {@linkcode parseAllowTargets}).
   * @param options The DNS resolver (tests pass their own).
   * @throws {AllowTargetsError} For an entry that is not a CIDR.
   */
  constructor(allow: readonly string[], options: TargetGuardOptions = {}) {
    if (allow.length > ALLOW_TARGETS_MAX) {
      throw new AllowTargetsError(
        `Cannot use allowed targets as there are too many: ${allow.length} > ${ALLOW_TARGETS_MAX}`,
      );
    }
    this.#allow = allow.map(parseCidr);
    this.#resolve = options.resolve ?? resolveWithDeno;
  }

  /**
   * Resolves the URL's host and checks every address it resolves to.
   *
   * @param url An http(s) URL (see `validateHookUrl`).
   * @param signal Aborts the DNS lookups.
   * @returns The address to connect to (the first IPv4 address, else the
   *   first IPv6 one) with its family.
   * @throws {TargetBlockedError} When any address is refused.
   * @throws {TargetResolveError} When the host does not resolve.
   */
  async check(url: URL, signal?: AbortSignal): Promise<CheckedAddress> {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(
        `Cannot check target as its scheme must be http or https: current value is '${
          url.protocol.slice(0, 16)
        }'`,
      );
    }
    const host = url.hostname;
    const addresses = await this.#addressesOf(host, signal);
    for (const address of addresses) {
      const rangeClass = this.#refusal(address);
      if (rangeClass !== null) {
        throw new TargetBlockedError(host, address.toString(), rangeClass);
      }
    }
    const chosen = addresses.find((a) => a.kind() === "ipv4") ?? addresses[0];
    if (chosen === undefined) {
      throw new TargetResolveError(
        host,
        `Cannot resolve '${host}' as it has no addresses`,
      );
    }
    return {
      address: chosen.toString(),
      family: chosen.kind() === "ipv4" ? 4 : 6,
    };
  }

  /** The refused range class of an address, null when it may be reached. */
  #refusal(address: IpAddress): string | null {
    const rangeClass = refusedClassOf(address);
    if (rangeClass === null || this.#allowed(address)) return null;
    return rangeClass;
  }

  #allowed(address: IpAddress): boolean {
    const mapped = address.kind() === "ipv6" &&
        (address as ipaddr.IPv6).isIPv4MappedAddress()
      ? (address as ipaddr.IPv6).toIPv4Address()
      : null;
    return this.#allow.some(([network, prefix]) => {
      if (network.kind() === address.kind()) {
        return address.match(network, prefix);
      }
      // An allowed IPv4 range allows its IPv4-mapped form too.
      return mapped !== null && network.kind() === "ipv4" &&
        mapped.match(network, prefix);
    });
  }

  async #addressesOf(
    host: string,
    signal: AbortSignal | undefined,
  ): Promise<IpAddress[]> {
    if (host.startsWith("[") && host.endsWith("]")) {
      return [parseAddress(host.slice(1, -1))];
    }
    if (ipaddr.IPv4.isValidFourPartDecimal(host)) {
      return [ipaddr.IPv4.parse(host)];
    }
    const name = host.toLowerCase().replace(/\.$/, "");
    if (name === "localhost" || name.endsWith(".localhost")) {
      // RFC 6761: always loopback, whatever a resolver would answer.
      return [ipaddr.parse("127.0.0.1"), ipaddr.parse("::1")];
    }
    return await this.#lookUp(host, signal);
  }

  async #lookUp(
    host: string,
    signal: AbortSignal | undefined,
  ): Promise<IpAddress[]> {
    const answers = await Promise.allSettled([
      this.#resolve(host, "A", signal),
      this.#resolve(host, "AAAA", signal),
    ]);
    const texts: string[] = [];
    for (const answer of answers) {
      if (answer.status === "rejected") {
        // A failed lookup is not "no records": with half the answers an
        // https connection (which resolves on its own) could pick an
        // address never checked.
        throw new TargetResolveError(
          host,
          `Cannot resolve '${host}': ${errorText(answer.reason)}`,
          { cause: answer.reason },
        );
      }
      texts.push(...answer.value);
    }
    if (texts.length > RESOLVED_ADDRESSES_MAX) {
      throw new TargetResolveError(
        host,
        `Cannot resolve '${host}' as it has too many addresses: ${texts.length} > ${RESOLVED_ADDRESSES_MAX}`,
      );
    }
    return texts.map((text) => {
      try {
        return parseAddress(text);
      } catch (cause) {
        throw new TargetResolveError(
          host,
          `Cannot resolve '${host}' as DNS answered a malformed address`,
          { cause },
        );
      }
    });
  }
}

/**
 * {@linkcode Resolver} with `Deno.resolveDns`; a name without records of
 * that type (`NotFound`) is an empty list.
 */
export async function resolveWithDeno(
  hostname: string,
  recordType: "A" | "AAAA",
  signal?: AbortSignal,
): Promise<readonly string[]> {
  try {
    return await Deno.resolveDns(hostname, recordType, { signal });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.slice(0, 128);
}
