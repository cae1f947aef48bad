/**
 * Reads a child process's output line by line.
 *
 * @module
 */

/** Calls `onLine` for each non-blank line of `stream`, the last unterminated one too. */
export async function lines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + text).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) if (line.trim() !== "") onLine(line);
  }
  if (rest.trim() !== "") onLine(rest);
}
