/**
 * Request counts and latency histograms of the HTTP listener, by route group
 * and status class, in Prometheus text form.
 *
 * @module
 */
import { Histogram } from "../../base/histogram.ts";

/** Upper bounds (ms) of the request latency buckets. */
const BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];

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
  readonly #series = new Map<string, Histogram>();

  /** Records one request. */
  record(group: string, status: number, durationMs: number): void {
    const key = `group="${group}",status="${Math.floor(status / 100)}xx"`;
    let series = this.#series.get(key);
    if (series === undefined) {
      series = new Histogram(BUCKETS_MS);
      this.#series.set(key, series);
    }
    series.observe(durationMs);
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
      lines.push(...series.lines("aspen_http_request_ms", labels));
    }
    return lines.join("\n") + "\n";
  }
}
