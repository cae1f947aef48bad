/**
 * `client.pubsub.groups` (issue 18): consumer groups' administration (list,
 * describe, reset, pause, resume). Re-exported by `pubsub.ts`.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  type GroupDescribeResponse,
  type GroupListResponse,
  type GroupPauseResponse,
  type GroupResetResponse,
  PUBSUB_LIMITS,
} from "../protocol/http_api_pubsub.ts";
import type { HttpTransport } from "./_transport.ts";
import { checkPubsubName, checkRange, readPath } from "./_pubsub_wire.ts";
import type {
  GroupDescription,
  GroupPauseState,
  GroupResetOptions,
  GroupResetResult,
  GroupResetTarget,
  GroupSummary,
  PubsubReadOptions,
} from "./_pubsub_types.ts";

/** Partition bound of `reset`: 0 to 255. */
const PARTITION_MAX = PUBSUB_LIMITS.partitionsMax - 1;

/** Consumer groups: list, describe, reset, pause, resume. */
export class AspenGroups {
  readonly #transport: HttpTransport;

  /** Used by `AspenPubsub`. */
  constructor(transport: HttpTransport) {
    this.#transport = transport;
  }

  /** The groups of `topic` (default: of every topic), by topic then group. */
  async list(
    options: PubsubReadOptions & { readonly topic?: string } = {},
  ): Promise<GroupSummary[]> {
    if (options.topic !== undefined) checkPubsubName(options.topic, "topic");
    const reply = await this.#transport.request(
      "POST",
      readPath(ROUTES.groupList, options.consistency),
      options.topic === undefined ? {} : { topic: options.topic },
      "idempotent",
    ) as GroupListResponse;
    return reply.groups.map((group) => ({ ...group }));
  }

  /**
   * A group's generation, members, and per partition its owner, cursor,
   * lag, pending, redelivered and skipped counts.
   *
   * @throws {GroupNotFoundError} When the topic has no such group.
   */
  async describe(
    topic: string,
    group: string,
    options: PubsubReadOptions = {},
  ): Promise<GroupDescription> {
    checkPubsubName(topic, "topic");
    checkPubsubName(group, "group");
    const reply = await this.#transport.request(
      "POST",
      readPath(ROUTES.groupDescribe, options.consistency),
      { topic, group },
      "idempotent",
    ) as GroupDescribeResponse;
    return { ...reply };
  }

  /**
   * Moves a group's cursors to `earliest`, `latest`, `{offset}` or
   * `{timeMs}`, dropping in-flight deliveries of those partitions.
   *
   * @throws {GroupNotEmptyError} When the group has members and `force` is not set.
   * @throws {GroupNotFoundError} When the topic has no such group.
   */
  async reset(
    topic: string,
    group: string,
    to: GroupResetTarget,
    options: GroupResetOptions = {},
  ): Promise<GroupResetResult> {
    checkPubsubName(topic, "topic");
    checkPubsubName(group, "group");
    checkRange(options.partition, "partition", 0, PARTITION_MAX);
    const reply = await this.#transport.request("POST", ROUTES.groupReset, {
      topic,
      group,
      to,
      ...(options.partition === undefined
        ? {}
        : { partition: options.partition }),
      ...(options.force === true ? { force: true } : {}),
    }, "write") as GroupResetResponse;
    return {
      generation: reply.generation,
      partitions: reply.partitions.map((p) => ({ ...p })),
    };
  }

  /**
   * Stops deliveries of a group (acks still apply), until `untilMs` when
   * given, else until resumed.
   *
   * @throws {GroupNotFoundError} When the topic has no such group.
   */
  async pause(
    topic: string,
    group: string,
    options: { readonly untilMs?: number } = {},
  ): Promise<GroupPauseState> {
    checkPubsubName(topic, "topic");
    checkPubsubName(group, "group");
    checkRange(options.untilMs, "untilMs", 0, Number.MAX_SAFE_INTEGER);
    const reply = await this.#transport.request("POST", ROUTES.groupPause, {
      topic,
      group,
      ...(options.untilMs === undefined ? {} : { untilMs: options.untilMs }),
    }, "write") as GroupPauseResponse;
    return { ...reply };
  }

  /**
   * Restarts deliveries of a paused group.
   *
   * @throws {GroupNotFoundError} When the topic has no such group.
   */
  async resume(topic: string, group: string): Promise<GroupPauseState> {
    checkPubsubName(topic, "topic");
    checkPubsubName(group, "group");
    const reply = await this.#transport.request("POST", ROUTES.groupResume, {
      topic,
      group,
    }, "write") as GroupPauseResponse;
    return { ...reply };
  }
}
