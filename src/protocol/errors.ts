/**
 * Typed errors of the wire protocol. Every malformed input a peer can send
 * ends in one of these, never in a crash.
 *
 * @module
 */

/** Why a frame or message was refused. Stable strings, safe to log and send. */
export type ProtocolErrorCode =
  | "frameTooLarge"
  | "handshakeTooLarge"
  | "truncatedFrame"
  | "streamEnded"
  | "malformedPayload"
  | "unknownFrameKind"
  | "unknownMessageType"
  | "invalidField"
  | "unsupportedVersion";

/** Bytes from a peer did not form a valid frame, envelope or message. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
  /** What was wrong, for callers that branch on it. */
  readonly code: ProtocolErrorCode;

  constructor(
    code: ProtocolErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A length prefix announced more bytes than the configured maximum. Raised
 * before any buffer of that size is allocated.
 */
export class FrameTooLargeError extends ProtocolError {
  override name = "FrameTooLargeError";
  /** The announced payload length, in bytes. */
  readonly frameBytes: number;
  /** The limit it exceeded, in bytes. */
  readonly frameBytesMax: number;

  constructor(frameBytes: number, frameBytesMax: number) {
    super(
      "frameTooLarge",
      `Cannot accept frame as its length exceeds 'maxFrameBytes': ${frameBytes} > ${frameBytesMax}`,
    );
    this.frameBytes = frameBytes;
    this.frameBytesMax = frameBytesMax;
  }
}
