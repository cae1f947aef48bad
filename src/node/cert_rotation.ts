/**
 * TLS certificate rotation without a restart: certificates last a week; the
 * node checks hourly and renews with a day left (or now, forced), serves the
 * new certificate on the same port, updates its own address in the member
 * directory (which rewrites `cluster.json`) and announces the new hash
 * through the log so peers pin it.
 *
 * @module
 */
import {
  encodeCertificateRecord,
  type NodeCertificate,
  signCertificateRecord,
} from "../cluster/certificate.ts";
import type { NodeIdentity } from "../cluster/identity.ts";
import type { Scheduled, Scheduler } from "../base/clock.ts";
import type { MemberDirectory } from "../cluster/member_directory.ts";
import type { NodeAddress } from "../protocol/cluster.ts";
import { encodeBase64Url } from "../base/base64.ts";
import { DATA_FILES, loadOrCreateCertificate } from "./data_dir.ts";

/** How often the certificate's age is checked, in ms (hourly). */
const CHECK_INTERVAL_MS = 60 * 60 * 1000;

/** Options of {@linkcode CertificateRotation}. */
export interface CertificateRotationOptions {
  readonly dataDir: string;
  readonly identity: NodeIdentity;
  /** The host name the certificate is for. */
  readonly quicHost: string;
  readonly directory: MemberDirectory;
  /** The transport's side: serve a new certificate. */
  readonly transport: {
    rotateCertificate(
      certificate: NodeCertificate,
      record: Uint8Array,
    ): Promise<void>;
  };
  /** Writes the directory to `cluster.json` (resolves once written). */
  readonly persist: () => Promise<void>;
  /** Announces this node's new address through the log (retrying on its own). */
  readonly announce: (previous: NodeAddress) => void;
  /** Timer of the hourly check. */
  readonly scheduler: Scheduler;
  readonly log: (line: string) => void;
}

/** Renews the node's certificate when due. */
export class CertificateRotation {
  readonly #options: CertificateRotationOptions;
  #timer: Scheduled | null = null;

  constructor(options: CertificateRotationOptions) {
    this.#options = options;
  }

  /** Starts the hourly check. */
  start(): void {
    if (this.#timer !== null) return;
    this.#timer = this.#options.scheduler.every(CHECK_INTERVAL_MS, () => {
      this.rotate().catch((error) =>
        this.#options.log(
          `warning: certificate rotation failed: ${(error as Error).message}`,
        )
      );
    });
  }

  /** Stops the check. */
  stop(): void {
    this.#timer?.cancel();
    this.#timer = null;
  }

  /**
   * Serves a new TLS certificate without a restart (same port) and announces
   * its hash through the log so peers pin it. Runs by itself when the current
   * certificate has a day or less left; `force` renews now.
   *
   * @returns Whether the certificate changed.
   */
  async rotate(force = false): Promise<boolean> {
    const { dataDir, identity, directory } = this.#options;
    if (force) {
      await Deno.remove(`${dataDir}/${DATA_FILES.certificate}`).catch(() => {});
    }
    const certificate = await loadOrCreateCertificate(dataDir, identity, [
      this.#options.quicHost,
    ]);
    const hash = encodeBase64Url(certificate.hash);
    const previous = directory.self;
    if (hash === previous.certificateHash) return false;
    const record = encodeCertificateRecord(
      await signCertificateRecord(identity, certificate),
    );
    await this.#options.transport.rotateCertificate(certificate, record);
    directory.setSelf({ ...previous, certificateHash: hash });
    await this.#options.persist();
    this.#options.log(`certificate rotated; announcing its hash`);
    this.#options.announce(previous);
    return true;
  }
}
