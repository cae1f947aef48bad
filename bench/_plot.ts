/**
 * The sustained run's plot: throughput per second (gets and puts), errors
 * per second by class, and the moments the leader was killed and
 * restarted, drawn as an SVG and rendered to PNG by headless Chromium
 * (Debian's `chromium`; no other plotting dependency).
 *
 * @module
 */
import type { SecondRecord } from "./_timeline.ts";

/** A moment marked on the plot. */
export interface PlotMark {
  /** Seconds since the start of the run. */
  readonly t: number;
  readonly label: string;
  readonly kind: "kill" | "restart";
}

/** What the plot shows. */
export interface PlotInput {
  readonly title: string;
  readonly subtitle: string;
  readonly seconds: readonly SecondRecord[];
  readonly marks: readonly PlotMark[];
}

/** The plot's size in pixels. */
export const PLOT_WIDTH = 1400;
/** The plot's size in pixels. */
export const PLOT_HEIGHT = 720;

/** Ms Chromium may take to render the plot. */
const RENDER_TIMEOUT_MS = 60_000;

const MARGIN = { left: 80, right: 30, top: 70 };
const THROUGHPUT_HEIGHT = 400;
const GAP = 50;
const ERRORS_HEIGHT = 130;

function escapeXml(text: string): string {
  return text.replace(
    /[<>&"]/g,
    (c) =>
      c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "&" ? "&amp;" : "&quot;",
  );
}

/** A round axis maximum at or above `value` (1, 2 or 5 times a power of ten). */
export function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/** The sustained run's plot as an SVG document. */
export function sustainedSvg(input: PlotInput): string {
  const width = PLOT_WIDTH - MARGIN.left - MARGIN.right;
  const seconds = input.seconds;
  const duration = Math.max(1, seconds.length);
  const x = (t: number) => MARGIN.left + (t / duration) * width;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}" font-family="sans-serif" font-size="13">`,
    `<rect width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}" fill="white"/>`,
    `<text x="${MARGIN.left}" y="28" font-size="18" font-weight="bold">${
      escapeXml(input.title)
    }</text>`,
    `<text x="${MARGIN.left}" y="50" fill="#444">${
      escapeXml(input.subtitle)
    }</text>`,
  );
  // Throughput panel.
  const top = MARGIN.top;
  const opsMax = niceMax(Math.max(...seconds.map((s) => s.gets + s.puts), 1));
  const yOps = (v: number) => top + THROUGHPUT_HEIGHT * (1 - v / opsMax);
  out.push(
    ...axes(top, THROUGHPUT_HEIGHT, opsMax, "operations / s", x, duration),
  );
  const line = (value: (s: SecondRecord) => number, color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${
      seconds.map((s) =>
        `${x(s.t + 0.5).toFixed(1)},${yOps(value(s)).toFixed(1)}`
      ).join(" ")
    }"/>`;
  out.push(
    line((s) => s.gets + s.puts, "#1f5fbf"),
    line((s) => s.puts, "#2a9d4b"),
  );
  // Errors panel: stacked bars per second.
  const errTop = top + THROUGHPUT_HEIGHT + GAP;
  const errMax = niceMax(
    Math.max(...seconds.map((s) => s.outcomeUnknown + s.otherErrors), 1),
  );
  const yErr = (v: number) => errTop + ERRORS_HEIGHT * (1 - v / errMax);
  out.push(...axes(errTop, ERRORS_HEIGHT, errMax, "errors / s", x, duration));
  const barWidth = Math.max(1, width / duration - 0.5);
  for (const s of seconds) {
    if (s.outcomeUnknown > 0) {
      out.push(
        `<rect x="${x(s.t).toFixed(1)}" y="${
          yErr(s.outcomeUnknown).toFixed(1)
        }" width="${barWidth.toFixed(1)}" height="${
          (errTop + ERRORS_HEIGHT - yErr(s.outcomeUnknown)).toFixed(1)
        }" fill="#f0a020"/>`,
      );
    }
    if (s.otherErrors > 0) {
      const base = yErr(s.outcomeUnknown);
      out.push(
        `<rect x="${x(s.t).toFixed(1)}" y="${
          (base - (errTop + ERRORS_HEIGHT - yErr(s.otherErrors))).toFixed(1)
        }" width="${barWidth.toFixed(1)}" height="${
          (errTop + ERRORS_HEIGHT - yErr(s.otherErrors)).toFixed(1)
        }" fill="#d62728"/>`,
      );
    }
  }
  // Kill and restart moments across both panels.
  const bottom = errTop + ERRORS_HEIGHT;
  for (const mark of input.marks) {
    const at = x(mark.t).toFixed(1);
    const kill = mark.kind === "kill";
    out.push(
      `<line x1="${at}" y1="${top}" x2="${at}" y2="${bottom}" stroke="${
        kill ? "#d62728" : "#888"
      }" stroke-width="${kill ? 1.5 : 1}" stroke-dasharray="${
        kill ? "6,3" : "2,3"
      }"/>`,
    );
    if (kill) {
      out.push(
        `<text x="${at}" y="${
          top + 14
        }" fill="#d62728" font-size="11" transform="rotate(90 ${at} ${
          top + 14
        })" dx="2" dy="-3">${escapeXml(mark.label)}</text>`,
      );
    }
  }
  // Legend.
  const legendY = PLOT_HEIGHT - 18;
  const legend: [string, string][] = [
    ["#1f5fbf", "ops/s (gets + puts)"],
    ["#2a9d4b", "puts/s"],
    ["#f0a020", "outcome-unknown errors/s"],
    ["#d62728", "other errors/s"],
  ];
  let lx = MARGIN.left;
  for (const [color, label] of legend) {
    out.push(
      `<rect x="${lx}" y="${
        legendY - 10
      }" width="14" height="10" fill="${color}"/>`,
      `<text x="${lx + 20}" y="${legendY}">${escapeXml(label)}</text>`,
    );
    lx += 40 + label.length * 7;
  }
  out.push(
    `<line x1="${lx}" y1="${legendY - 5}" x2="${lx + 24}" y2="${
      legendY - 5
    }" stroke="#d62728" stroke-dasharray="6,3"/>`,
    `<text x="${lx + 30}" y="${legendY}">leader SIGKILL</text>`,
    `<line x1="${lx + 150}" y1="${legendY - 5}" x2="${lx + 174}" y2="${
      legendY - 5
    }" stroke="#888" stroke-dasharray="2,3"/>`,
    `<text x="${lx + 180}" y="${legendY}">killed node restarted</text>`,
    `</svg>`,
  );
  return out.join("\n");
}

function axes(
  top: number,
  height: number,
  max: number,
  label: string,
  x: (t: number) => number,
  duration: number,
): string[] {
  const left = MARGIN.left;
  const right = PLOT_WIDTH - MARGIN.right;
  const out: string[] = [
    `<rect x="${left}" y="${top}" width="${
      right - left
    }" height="${height}" fill="none" stroke="#999"/>`,
    `<text x="16" y="${top + height / 2}" transform="rotate(-90 16 ${
      top + height / 2
    })" text-anchor="middle">${escapeXml(label)}</text>`,
  ];
  // Integer ticks on a small axis (errors), quarters otherwise.
  const ticks = max < 4 ? max : 4;
  for (let i = 0; i <= ticks; i++) {
    const v = (max * i) / ticks;
    const y = top + height * (1 - i / ticks);
    out.push(
      `<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${y + 4}" text-anchor="end">${
        Number.isInteger(v) ? v : v.toFixed(1)
      }</text>`,
    );
  }
  const step = niceMax(duration / 12);
  for (let t = 0; t <= duration; t += step) {
    out.push(
      `<text x="${x(t)}" y="${
        top + height + 16
      }" text-anchor="middle">${t} s</text>`,
    );
  }
  return out;
}

/** Why the PNG could not be rendered. */
export class PlotRenderError extends Error {
  override name = "PlotRenderError";
}

/**
 * Renders `svg` to `pngPath` with headless Chromium.
 *
 * @param workDir A folder for the SVG file and Chromium's profile.
 * @throws {PlotRenderError} When Chromium is missing or wrote no PNG.
 */
export async function renderPng(
  svg: string,
  pngPath: string,
  workDir: string,
): Promise<void> {
  const svgPath = `${workDir}/plot.svg`;
  // Rendered beside the SVG first, so that an older PNG never passes for this one.
  const renderedPath = `${workDir}/plot.png`;
  await Deno.writeTextFile(svgPath, svg);
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("chromium", {
      args: [
        "--headless",
        // Run as root in a container: Chromium refuses its sandbox there.
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        `--user-data-dir=${workDir}/chromium-profile`,
        `--window-size=${PLOT_WIDTH},${PLOT_HEIGHT}`,
        `--screenshot=${renderedPath}`,
        `file://${svgPath}`,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(RENDER_TIMEOUT_MS),
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new PlotRenderError(
        "Cannot render the plot as 'chromium' is not installed (apt-get install -y chromium)",
        { cause: error },
      );
    }
    throw new PlotRenderError(
      `Cannot render the plot: chromium failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const signature = await readStart(renderedPath);
  if (!output.success || signature !== "\x89PNG") {
    throw new PlotRenderError(
      `Cannot render the plot: chromium exited with ${output.code} and wrote no PNG: ${
        new TextDecoder().decode(output.stderr).slice(-500)
      }`,
    );
  }
  await Deno.copyFile(renderedPath, pngPath);
}

async function readStart(path: string): Promise<string> {
  try {
    const bytes = await Deno.readFile(path);
    return String.fromCharCode(...bytes.subarray(0, 4));
  } catch {
    return "";
  }
}
