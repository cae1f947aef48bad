/**
 * Request counts and latency histograms of the HTTP listener, by route group
 * and status class, in Prometheus text form.
 *
 * @module
 */

/** Upper bounds (ms) of the request latency buckets. */
const BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];

interface Series {
  readonly counts: number[];
  total: number;
  sumMs: number;
}

/** Route groups requests are counted under (bounded label values). */
export function routeGroup(path: string): string {
  if (path.startsWith("/v1/kv/")) return "kv";
  if (path.startsWith("/v1/cluster/")) return "cluster";
  if (path.startsWith("/kv")) return "kv_connect";
  if (path === "/health" || path === "/metrics") return path.slice(1);
  return "other";
}

/** Accumulates request latencies. */
export class HttpMetrics {
  readonly #series = new Map<string, Series>();

  /** Records one request. */
  record(group: string, status: number, durationMs: number): void {
    const key = `group="${group}",status="${Math.floor(status / 100)}xx"`;
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { counts: BUCKETS_MS.map(() => 0), total: 0, sumMs: 0 };
      this.#series.set(key, series);
    }
    for (const [i, bound] of BUCKETS_MS.entries()) {
      if (durationMs <= bound) series.counts[i]!++;
    }
    series.total++;
    series.sumMs += durationMs;
  }

  /** Prometheus text. */
  render(): string {
    const lines = [
      "# HELP aspen_http_request_ms HTTP request latency by route group and status class.",
      "# TYPE aspen_http_request_ms histogram",
    ];
    for (
      const [labels, series] of [...this.#series].sort(([a], [b]) =>
        a.localeCompare(b)
      )
    ) {
      for (const [i, bound] of BUCKETS_MS.entries()) {
        lines.push(
          `aspen_http_request_ms_bucket{${labels},le="${bound}"} ${
            series.counts[i]
          }`,
        );
      }
      lines.push(
        `aspen_http_request_ms_bucket{${labels},le="+Inf"} ${series.total}`,
        `aspen_http_request_ms_sum{${labels}} ${series.sumMs.toFixed(3)}`,
        `aspen_http_request_ms_count{${labels}} ${series.total}`,
      );
    }
    return lines.join("\n") + "\n";
  }
}
