/**
 * Where a shell job runs: its `cwd` resolved (symlinks and `..`) and
 * checked to lie under the policy's `cwdRoot`, or, without a `cwd`, a fresh
 * folder of the attempt under `<stateDir>/attempts` that the runner
 * removes when the attempt ends.
 *
 * @module
 */
import { type ShellPolicy, ShellPolicyError } from "./policy.ts";

/** A job id as the jobs service names them. */
const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A resolved working folder. */
export interface WorkingFolder {
  /** The real path the child starts in. */
  readonly path: string;
  /** True when the runner made it for this attempt (and removes it). */
  readonly fresh: boolean;
}

/**
 * The fresh folder of one attempt: `<stateDir>/attempts/<jobId>.<attempt>`.
 *
 * @throws {RangeError} A job id outside `[A-Za-z0-9._:-]{1,128}` or an
 *   attempt that is not a positive integer.
 */
export function attemptFolder(
  policy: ShellPolicy,
  jobId: string,
  attempt: number,
): string {
  if (!JOB_ID.test(jobId)) {
    throw new RangeError(
      `Cannot run a shell job as its id is not [A-Za-z0-9._:-]{1,128}: current value is '${jobId}'`,
    );
  }
  if (!Number.isSafeInteger(attempt) || attempt < 1) {
    throw new RangeError(
      `Cannot run a shell job as 'attempt' must be a positive integer: current value is ${attempt}`,
    );
  }
  // "<id>.<attempt>" is never "." or "..", whatever the id.
  return `${policy.stateDir}/attempts/${jobId}.${attempt}`;
}

/**
 * Resolves the folder a job runs in.
 *
 * @param cwd The payload's `cwd`: absolute, or relative to `cwdRoot`.
 * @throws {ShellPolicyError} `cwdNotAllowed`: a `cwd` without a root, one
 *   that does not exist or is not a folder, or one outside the root once
 *   symlinks and `..` are resolved.
 */
export async function resolveWorkingFolder(
  policy: ShellPolicy,
  cwd: string | null,
  jobId: string,
  attempt: number,
): Promise<WorkingFolder> {
  const fresh = attemptFolder(policy, jobId, attempt);
  if (cwd === null) {
    await Deno.mkdir(fresh, { recursive: true });
    return { path: await Deno.realPath(fresh), fresh: true };
  }
  if (policy.cwdRoot === null) {
    throw new ShellPolicyError(
      "cwdNotAllowed",
      `Cannot run a shell job as it names a 'cwd' and the worker has no 'cwdRoot': '${cwd}'`,
    );
  }
  const root = await Deno.realPath(policy.cwdRoot);
  const asked = cwd.startsWith("/") ? cwd : `${policy.cwdRoot}/${cwd}`;
  let real: string;
  try {
    real = await Deno.realPath(asked);
  } catch (error) {
    throw new ShellPolicyError(
      "cwdNotAllowed",
      `Cannot run a shell job as its 'cwd' cannot be resolved: '${cwd}'`,
      { cause: error },
    );
  }
  if (
    real !== root && !real.startsWith(root.endsWith("/") ? root : `${root}/`)
  ) {
    throw new ShellPolicyError(
      "cwdNotAllowed",
      `Cannot run a shell job as its 'cwd' lies outside the root '${root}': '${cwd}' is '${real}'`,
    );
  }
  const info = await Deno.stat(real);
  if (!info.isDirectory) {
    throw new ShellPolicyError(
      "cwdNotAllowed",
      `Cannot run a shell job as its 'cwd' is not a folder: '${cwd}'`,
    );
  }
  return { path: real, fresh: false };
}
