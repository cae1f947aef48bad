/**
 * A cumulative Prometheus histogram: bucket counts, sum and count only ever
 * grow (from process start), as the text format requires, in fixed memory.
 *
 * @module
 */

/** Counts observations into fixed upper bounds (`le`). */
export class Histogram {
  readonly #bounds: readonly number[];
  /** Per bucket, observations above the previous bound and at most its own. */
  readonly #counts: number[];
  #count = 0;
  #sum = 0;

  /**
   * @throws {RangeError} When the bounds are not finite and strictly increasing.
   */
  constructor(bounds: readonly number[]) {
    for (const [i, bound] of bounds.entries()) {
      if (!Number.isFinite(bound) || (i > 0 && bound <= bounds[i - 1]!)) {
        throw new RangeError(
          `Cannot create histogram as its bounds must be finite and increasing: ${
            bounds.join(", ")
          }`,
        );
      }
    }
    this.#bounds = [...bounds];
    this.#counts = bounds.map(() => 0);
  }

  /** Records one observation: one bucket counted (made cumulative when exposed). */
  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.#counts[i]!++;
    this.#count++;
    this.#sum += value;
  }

  /** Observations so far. */
  get count(): number {
    return this.#count;
  }

  /** Sum of the observations so far. */
  get sum(): number {
    return this.#sum;
  }

  /**
   * The `_bucket`, `_sum` and `_count` lines of `name`, with `labels`
   * (`a="x",b="y"`, already escaped) on each.
   */
  lines(name: string, labels = ""): string[] {
    const prefix = labels === "" ? "" : `${labels},`;
    const suffix = labels === "" ? "" : `{${labels}}`;
    let cumulative = 0;
    return [
      ...this.#bounds.map((bound, i) => {
        cumulative += this.#counts[i]!;
        return `${name}_bucket{${prefix}le="${bound}"} ${cumulative}`;
      }),
      `${name}_bucket{${prefix}le="+Inf"} ${this.#count}`,
      `${name}_sum${suffix} ${this.#sum.toFixed(3)}`,
      `${name}_count${suffix} ${this.#count}`,
    ];
  }
}
